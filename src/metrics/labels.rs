//! The closed label sets: every label value the request metrics can carry is one of these
//! enums (or a pool/backend/policy name from the config), so cardinality is fixed by the
//! config, never by traffic. Each enum indexes the pre-resolved handle tables.

use crate::scim::{Operation, ResourceType, ScimView};

/// The `endpoint` label: what a request is about, coarser than the routing classes (a read
/// and a write of Users are one endpoint, told apart by `operation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Endpoint {
    Users,
    Groups,
    Bulk,
    Me,
    Search,
    Schemas,
    ResourceTypes,
    ServiceProviderConfig,
    Other,
}

impl Endpoint {
    pub const ALL: [Endpoint; 9] = [
        Self::Users,
        Self::Groups,
        Self::Bulk,
        Self::Me,
        Self::Search,
        Self::Schemas,
        Self::ResourceTypes,
        Self::ServiceProviderConfig,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Groups => "groups",
            Self::Bulk => "bulk",
            Self::Me => "me",
            Self::Search => "search",
            Self::Schemas => "schemas",
            Self::ResourceTypes => "resource_types",
            Self::ServiceProviderConfig => "service_provider_config",
            Self::Other => "other",
        }
    }

    pub fn of(view: &ScimView) -> Self {
        if view.op == Operation::Search {
            return Self::Search;
        }
        match view.resource {
            ResourceType::Users => Self::Users,
            ResourceType::Groups => Self::Groups,
            ResourceType::Bulk => Self::Bulk,
            ResourceType::Me => Self::Me,
            ResourceType::Schemas => Self::Schemas,
            ResourceType::ResourceTypes => Self::ResourceTypes,
            ResourceType::ServiceProviderConfig => Self::ServiceProviderConfig,
            ResourceType::Root | ResourceType::Custom(_) => Self::Other,
        }
    }
}

/// The `operation` label: the SCIM operation, with deprovisioning (a User deleted or set
/// `active: false`) as its own value because it is the one an operator pages on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    List,
    Get,
    Create,
    Replace,
    Patch,
    Delete,
    Deprovision,
    Search,
    Bulk,
    Discovery,
    Other,
}

impl Op {
    pub const ALL: [Op; 11] = [
        Self::List,
        Self::Get,
        Self::Create,
        Self::Replace,
        Self::Patch,
        Self::Delete,
        Self::Deprovision,
        Self::Search,
        Self::Bulk,
        Self::Discovery,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Get => "get",
            Self::Create => "create",
            Self::Replace => "replace",
            Self::Patch => "patch",
            Self::Delete => "delete",
            Self::Deprovision => "deprovision",
            Self::Search => "search",
            Self::Bulk => "bulk",
            Self::Discovery => "discovery",
            Self::Other => "other",
        }
    }

    pub fn of(op: Operation) -> Self {
        match op {
            Operation::List => Self::List,
            Operation::Get => Self::Get,
            Operation::Create => Self::Create,
            Operation::Replace => Self::Replace,
            Operation::Patch => Self::Patch,
            Operation::Delete => Self::Delete,
            Operation::Search => Self::Search,
            Operation::Bulk => Self::Bulk,
            Operation::Discovery => Self::Discovery,
            Operation::Other => Self::Other,
        }
    }
}

/// The `code` label: the status class of the final answer sent downstream; `other` when
/// none was sent (the client went away first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    C1xx,
    C2xx,
    C3xx,
    C4xx,
    C5xx,
    Other,
}

impl Code {
    pub const ALL: [Code; 6] = [Self::C1xx, Self::C2xx, Self::C3xx, Self::C4xx, Self::C5xx, Self::Other];

    pub fn of(status: u16) -> Self {
        match status {
            100..=199 => Self::C1xx,
            200..=299 => Self::C2xx,
            300..=399 => Self::C3xx,
            400..=499 => Self::C4xx,
            500..=599 => Self::C5xx,
            _ => Self::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::C1xx => "1xx",
            Self::C2xx => "2xx",
            Self::C3xx => "3xx",
            Self::C4xx => "4xx",
            Self::C5xx => "5xx",
            Self::Other => "other",
        }
    }
}

/// Endpoint × operation pairs that can happen; only these get series, so the exposition is
/// not padded with combinations no request can produce (`schemas`/`deprovision`).
pub fn possible(e: Endpoint, o: Op) -> bool {
    use Op::*;
    match e {
        Endpoint::Users => matches!(o, List | Get | Create | Replace | Patch | Deprovision | Other),
        Endpoint::Groups | Endpoint::Other => matches!(o, List | Get | Create | Replace | Patch | Delete | Other),
        Endpoint::Me => matches!(o, Get | Create | Replace | Patch | Delete | Other),
        Endpoint::Bulk => matches!(o, Bulk | Other),
        Endpoint::Search => o == Search,
        Endpoint::Schemas | Endpoint::ResourceTypes | Endpoint::ServiceProviderConfig => matches!(o, Discovery | Other),
    }
}

/// The pair a request is counted under: itself when possible, else its endpoint's `other`.
pub fn fold(e: Endpoint, o: Op) -> (Endpoint, Op) {
    if possible(e, o) {
        (e, o)
    } else if possible(e, Op::Other) {
        (e, Op::Other)
    } else {
        (Endpoint::Other, Op::Other)
    }
}

/// The labels of a routed request; `deprovision` comes from [`super::deprovision`] (PATCH/PUT
/// bodies) and is implied by any DELETE of a User.
pub fn classify(view: &ScimView, deprovision: bool) -> (Endpoint, Op) {
    let e = Endpoint::of(view);
    let o = match view.op {
        Operation::Delete if view.resource == ResourceType::Users => Op::Deprovision,
        Operation::Patch | Operation::Replace if deprovision => Op::Deprovision,
        op => Op::of(op),
    };
    fold(e, o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::path::segments;
    use crate::scim::{classify as scim_classify, Method};

    fn view(method: &str, path: &str) -> ScimView {
        scim_classify(Method::parse(method), path, segments(path))
    }

    #[test]
    fn every_request_lands_on_a_possible_pair() {
        for e in Endpoint::ALL {
            for o in Op::ALL {
                let (fe, fo) = fold(e, o);
                assert!(possible(fe, fo), "{e:?}/{o:?} folds to {fe:?}/{fo:?}");
            }
        }
        let methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "BREW"];
        let paths = [
            "/",
            "/Users",
            "/Users/1",
            "/Users/.search",
            "/Users/1/x",
            "/Groups/2",
            "/Me",
            "/Bulk",
            "/Schemas",
            "/ResourceTypes/User",
            "/ServiceProviderConfig",
            "/.search",
            "/Devices/9",
        ];
        for m in methods {
            for p in paths {
                for dep in [false, true] {
                    let (e, o) = classify(&view(m, p), dep);
                    assert!(possible(e, o), "{m} {p}: {e:?}/{o:?}");
                }
            }
        }
    }

    #[test]
    fn deprovisioning_is_its_own_operation_for_users_only() {
        assert_eq!(
            classify(&view("DELETE", "/Users/1"), false),
            (Endpoint::Users, Op::Deprovision)
        );
        assert_eq!(
            classify(&view("PATCH", "/Users/1"), true),
            (Endpoint::Users, Op::Deprovision)
        );
        assert_eq!(
            classify(&view("PATCH", "/Users/1"), false),
            (Endpoint::Users, Op::Patch)
        );
        assert_eq!(
            classify(&view("DELETE", "/Groups/1"), false),
            (Endpoint::Groups, Op::Delete)
        );
        assert_eq!(
            classify(&view("POST", "/Users/.search"), false),
            (Endpoint::Search, Op::Search)
        );
        assert_eq!(
            classify(&view("GET", "/Schemas"), false),
            (Endpoint::Schemas, Op::Discovery)
        );
        assert_eq!(classify(&view("GET", "/Devices"), false), (Endpoint::Other, Op::List));
    }

    #[test]
    fn status_classes() {
        assert_eq!(Code::of(0), Code::Other);
        assert_eq!(Code::of(101), Code::C1xx);
        assert_eq!(Code::of(204), Code::C2xx);
        assert_eq!(Code::of(429), Code::C4xx);
        assert_eq!(Code::of(599), Code::C5xx);
        assert_eq!(Code::of(600), Code::Other);
    }
}
