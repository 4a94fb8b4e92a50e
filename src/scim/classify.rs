//! Turns a request (method + path below a SCIM base path) into a [`ScimView`]: resource type,
//! id, operation and endpoint class. Pure and allocation-free so it can run on every request
//! and be tested from a table.

use super::path::{seg_eq, Span};

/// The coarse traffic classes that routes and (later) limits select on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EndpointClass {
    UsersRead,
    UsersWrite,
    GroupsRead,
    GroupsWrite,
    Bulk,
    Search,
    Discovery,
    Me,
    Other,
}

impl EndpointClass {
    pub const ALL: [EndpointClass; 9] = [
        Self::UsersRead,
        Self::UsersWrite,
        Self::GroupsRead,
        Self::GroupsWrite,
        Self::Bulk,
        Self::Search,
        Self::Discovery,
        Self::Me,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UsersRead => "users.read",
            Self::UsersWrite => "users.write",
            Self::GroupsRead => "groups.read",
            Self::GroupsWrite => "groups.write",
            Self::Bulk => "bulk",
            Self::Search => "search",
            Self::Discovery => "discovery",
            Self::Me => "me",
            Self::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn bit(self) -> u16 {
        1 << (self as u8)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceType {
    /// The base path itself or `/.search` at the root.
    Root,
    Users,
    Groups,
    Me,
    ServiceProviderConfig,
    ResourceTypes,
    Schemas,
    Bulk,
    /// A custom resource type endpoint (e.g. `/Devices`); the span names it in the path.
    Custom(Span),
}

impl ResourceType {
    pub fn name<'a>(&self, path: &'a str) -> &'a str {
        match self {
            Self::Root => "",
            Self::Users => "Users",
            Self::Groups => "Groups",
            Self::Me => "Me",
            Self::ServiceProviderConfig => "ServiceProviderConfig",
            Self::ResourceTypes => "ResourceTypes",
            Self::Schemas => "Schemas",
            Self::Bulk => "Bulk",
            Self::Custom(s) => s.of(path),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    List,
    Get,
    Create,
    Replace,
    Patch,
    Delete,
    Search,
    Bulk,
    Discovery,
    /// A method or path shape SCIM does not define (e.g. `DELETE /Users`, `OPTIONS`); passed to
    /// the upstream, which answers it with its own 404/405/501.
    Other,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Get => "get",
            Self::Create => "create",
            Self::Replace => "replace",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::Search => "search",
            Self::Bulk => "bulk",
            Self::Discovery => "discovery",
            Self::Other => "other",
        }
    }

    /// May this operation be sent again after the upstream may have seen it? Reads and the
    /// idempotent PUT/DELETE may; POST creates, PATCH and Bulk never (a replay duplicates users).
    pub fn replay_safe(self) -> bool {
        matches!(
            self,
            Self::List | Self::Get | Self::Search | Self::Discovery | Self::Replace | Self::Delete
        )
    }
}

/// The method subset SCIM cares about, as a small copyable value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other,
}

impl Method {
    pub const NAMES: [&'static str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

    pub fn parse(m: &str) -> Self {
        match m {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            "OPTIONS" => Self::Options,
            _ => Self::Other,
        }
    }

    pub fn bit(self) -> u16 {
        1 << (self as u8)
    }

    fn is_read(self) -> bool {
        matches!(self, Self::Get | Self::Head)
    }
}

/// What the proxy knows about a SCIM request once, for routing, affinity and logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScimView {
    pub resource: ResourceType,
    pub id: Option<Span>,
    pub op: Operation,
    pub class: EndpointClass,
}

/// Classifies the segments that follow the base path. `rest` yields spans into `path`.
pub fn classify(method: Method, path: &str, mut rest: impl Iterator<Item = Span>) -> ScimView {
    let first = rest.next();
    let second = rest.next();
    let third = rest.next();
    let seg = |s: Option<Span>| s.map(|s| s.of(path));
    // `.search` is matched like an endpoint name (any case, any encoding): the upstream decodes
    // `/%2esearch` into a search, so classifying it as an id would misroute and mis-limit it.
    let is_search = |s: &str| seg_eq(s, ".search");
    let (resource, id, search) = match (seg(first), seg(second), third) {
        (None, _, _) => (ResourceType::Root, None, false),
        (Some(a), None, None) if is_search(a) => (ResourceType::Root, None, true),
        (Some(a), b, None) => {
            let rt = resource_type(a, first.unwrap_or_default());
            match b {
                None => (rt, None, false),
                Some(b) if is_search(b) => (rt, None, true),
                Some(_) => (rt, second, false),
            }
        }
        // Deeper than /Type/id: not SCIM; classify by type so it still routes with its family.
        (Some(a), _, Some(_)) => {
            let rt = resource_type(a, first.unwrap_or_default());
            let op = Operation::Other;
            return ScimView {
                resource: rt,
                id: second,
                op,
                class: class_for(rt, op, method),
            };
        }
    };
    let op = operation(resource, id.is_some(), search, method);
    ScimView {
        resource,
        id,
        op,
        class: class_for(resource, op, method),
    }
}

fn resource_type(seg: &str, span: Span) -> ResourceType {
    const KNOWN: [(&str, ResourceType); 7] = [
        ("Users", ResourceType::Users),
        ("Groups", ResourceType::Groups),
        ("Me", ResourceType::Me),
        ("ServiceProviderConfig", ResourceType::ServiceProviderConfig),
        ("ResourceTypes", ResourceType::ResourceTypes),
        ("Schemas", ResourceType::Schemas),
        ("Bulk", ResourceType::Bulk),
    ];
    KNOWN
        .iter()
        .find(|(name, _)| seg_eq(seg, name))
        .map(|(_, rt)| *rt)
        .unwrap_or(ResourceType::Custom(span))
}

fn operation(rt: ResourceType, has_id: bool, search: bool, m: Method) -> Operation {
    use Operation as O;
    if search {
        return if m == Method::Post { O::Search } else { O::Other };
    }
    match rt {
        ResourceType::ServiceProviderConfig | ResourceType::ResourceTypes | ResourceType::Schemas => {
            if m.is_read() {
                O::Discovery
            } else {
                O::Other
            }
        }
        ResourceType::Bulk if !has_id && m == Method::Post => O::Bulk,
        ResourceType::Bulk | ResourceType::Root => O::Other,
        // /Me is a single resource: GET/PUT/PATCH/DELETE act on the caller, POST creates it.
        ResourceType::Me => match m {
            Method::Get | Method::Head if !has_id => O::Get,
            Method::Post if !has_id => O::Create,
            Method::Put if !has_id => O::Replace,
            Method::Patch if !has_id => O::Patch,
            Method::Delete if !has_id => O::Delete,
            _ => O::Other,
        },
        ResourceType::Users | ResourceType::Groups | ResourceType::Custom(_) => match (m, has_id) {
            (Method::Get | Method::Head, false) => O::List,
            (Method::Post, false) => O::Create,
            (Method::Get | Method::Head, true) => O::Get,
            (Method::Put, true) => O::Replace,
            (Method::Patch, true) => O::Patch,
            (Method::Delete, true) => O::Delete,
            _ => O::Other,
        },
    }
}

fn class_for(rt: ResourceType, op: Operation, m: Method) -> EndpointClass {
    use EndpointClass as C;
    if op == Operation::Search {
        return C::Search;
    }
    let read = m.is_read();
    match rt {
        ResourceType::Users if read => C::UsersRead,
        ResourceType::Users => C::UsersWrite,
        ResourceType::Groups if read => C::GroupsRead,
        ResourceType::Groups => C::GroupsWrite,
        ResourceType::Me => C::Me,
        ResourceType::Bulk => C::Bulk,
        ResourceType::ServiceProviderConfig | ResourceType::ResourceTypes | ResourceType::Schemas if read => {
            C::Discovery
        }
        _ => C::Other,
    }
}
