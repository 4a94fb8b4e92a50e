//! Faults survived (issue 10): replicas killed and restarted under identity-provider load with
//! every answer accounted for and no user duplicated, a black-hole and a slow upstream answered
//! with SCIM 504s in time and ejected, and a stalled (not refused) Redis costing each request at
//! most its configured timeout.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// These tests measure latencies against timeouts of a second or less: run them one at a time
/// so one's load (three Python servers, a dozen client threads) cannot push another's past
/// its bound on a two-core machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// Longer than any answer scimitar may legitimately take in these tests (its slowest path is a
/// `max_conns` wait, then connect and read timeouts): a client still waiting after this is hung.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(25);

/// One request with its own deadline, timed. An `Err` is a hang (no byte for
/// [`CLIENT_TIMEOUT`]) or a connection the proxy dropped without an answer.
fn timed(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (std::io::Result<Response>, Duration) {
    let t0 = Instant::now();
    let r = (|| {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        s.set_write_timeout(Some(CLIENT_TIMEOUT))?;
        client::exchange(&mut s, &addr.to_string(), method, target, headers, body, true)
    })();
    (r, t0.elapsed())
}

fn user_body(name: &str) -> String {
    format!(r#"{{"schemas":["{USER}"],"userName":"{name}"}}"#)
}

/// `GET /Users?filter=userName eq "name"`, percent-encoded (names here are `[a-z0-9-]`).
fn filter_target(name: &str) -> String {
    format!("/v2/Users?filter=userName%20eq%20%22{name}%22")
}

/// What is wrong with an answer's shape, if anything: every answer but a 204 must be a SCIM
/// JSON document, and every error the RFC 7644 §3.12 error with `status` as a string.
fn scim_shape_problem(r: &Response) -> Option<String> {
    if r.status == 204 {
        return (!r.body.is_empty()).then(|| format!("204 with a body: {}", r.text()));
    }
    if r.header("content-type") != Some("application/scim+json") {
        return Some(format!(
            "{} with Content-Type {:?}: {}",
            r.status,
            r.header("content-type"),
            r.text()
        ));
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&r.body) else {
        return Some(format!("{} with a body that is not JSON: {}", r.status, r.text()));
    };
    if r.status >= 400 {
        let is_error = v["schemas"].as_array().is_some_and(|s| s.iter().any(|x| x == ERROR));
        if !is_error || v["status"].as_str() != Some(r.status.to_string().as_str()) {
            return Some(format!("{} that is not a SCIM error: {}", r.status, r.text()));
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// 1. Replicas killed and restarted under mixed IdP load.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Op {
    /// POST /Users
    Create,
    /// GET /Users?filter=userName eq "x", before a create
    Filter,
    /// GET /Users/{id}
    Get,
    /// PATCH /Users/{id}
    Patch,
    /// DELETE /Users/{id}
    Delete,
}

impl Op {
    /// What scimitar may replay on another server after a failure (`Operation::replay_safe`):
    /// these must end with an upstream's answer while a healthy replica remains — unless the
    /// replica crashes in the middle of its own answer ([`cut_short`]).
    fn replay_safe(self) -> bool {
        matches!(self, Op::Filter | Op::Get | Op::Delete)
    }

    /// The upstream answers each may get from scim2-server during the run: a resource created
    /// on a replica that died, or on one the tenant's key has since moved away from, is a 404.
    fn upstream_statuses(self) -> &'static [u16] {
        match self {
            Op::Create => &[201, 409],
            Op::Filter => &[200],
            Op::Get => &[200, 404],
            Op::Patch => &[200, 204, 404],
            Op::Delete => &[204, 404],
        }
    }
}

/// An answer whose body stopped short of its Content-Length: the upstream died after its
/// answer had started, so the proxy could neither finish nor replace it (the header was
/// already on its way, and another server's answer cannot follow it). The client sees a
/// transport error, as it would from a reset.
fn cut_short(r: &Response) -> bool {
    r.header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| r.body.len() < n)
}

/// One exchange as the IdP client saw it.
#[derive(Debug)]
struct Seen {
    tenant: usize,
    op: Op,
    request_id: String,
    /// The userName the request was about.
    user: Option<String>,
    /// `None`: no answer at all (hung, or the connection dropped).
    status: Option<u16>,
    /// The answer was [`cut_short`].
    cut: bool,
    /// Why this answer breaks scimitar's promises, if it does.
    problem: Option<String>,
    elapsed: Duration,
    /// When the answer was complete.
    at: Instant,
}

/// The judgement on one answer: a replay-safe request gets an upstream's answer; a create or
/// PATCH gets one or a proxy-made SCIM 502/503/504; nothing else, and always in SCIM.
fn judge(op: Op, r: &std::io::Result<Response>) -> Option<String> {
    let r = match r {
        Ok(r) => r,
        Err(e) => return Some(format!("{op:?}: no answer within {CLIENT_TIMEOUT:?}: {e}")),
    };
    if cut_short(r) {
        // Judged later, against the ledgers: only a replica that crashed may cut an answer.
        return None;
    }
    let proxy_error = matches!(r.status, 502..=504);
    let allowed = op.upstream_statuses().contains(&r.status) || (proxy_error && !op.replay_safe());
    if !allowed {
        return Some(format!("{op:?} answered {}: {}", r.status, r.text()));
    }
    scim_shape_problem(r).map(|p| format!("{op:?}: {p}"))
}

/// One identity-provider tenant (one bearer token) provisioning in a loop: creates,
/// filter-then-create (also re-checking a create that failed before trying it again, as Entra
/// ID and Okta do), reads, PATCHes and deletes of the users it created.
fn idp_tenant(addr: SocketAddr, tenant: usize, token: String, stop: Arc<AtomicBool>) -> Vec<Seen> {
    const MAX_OPS: usize = 5_000;
    let auth = format!("Bearer {token}");
    let mut seen = Vec::new();
    // (id, userName) of users this tenant created and has not deleted.
    let mut known: Vec<(String, String)> = Vec::new();
    // Creates that failed: the next filter-then-create checks for them first.
    let mut failed: Vec<String> = Vec::new();
    let mut fresh = 0;
    for n in 0..MAX_OPS {
        if stop.load(SeqCst) {
            break;
        }
        let mut exchange = |op: Op, method: &str, target: &str, body: Option<&str>, user: Option<&str>| {
            let request_id = format!("faults-t{tenant}-{n}-{op:?}");
            let headers = [("Authorization", auth.as_str()), ("X-Request-Id", request_id.as_str())];
            let (r, elapsed) = timed(addr, method, target, &headers, body);
            seen.push(Seen {
                tenant,
                op,
                request_id,
                user: user.map(str::to_string),
                status: r.as_ref().ok().map(|r| r.status),
                cut: r.as_ref().is_ok_and(cut_short),
                problem: judge(op, &r),
                elapsed,
                at: Instant::now(),
            });
            r.ok().filter(|r| !cut_short(r))
        };
        let target_known = (!known.is_empty()).then(|| n % known.len());
        let step = match (n % 8, target_known) {
            (1 | 4, Some(_)) => Op::Get,
            (3, Some(_)) => Op::Patch,
            (7, Some(_)) => Op::Delete,
            (2 | 6, _) => Op::Filter,
            _ => Op::Create,
        };
        match step {
            Op::Create | Op::Filter => {
                let again = if step == Op::Filter { failed.pop() } else { None };
                let name = match again {
                    Some(again) => again,
                    None => {
                        fresh += 1;
                        format!("t{tenant}-u{fresh}")
                    }
                };
                if step == Op::Filter {
                    let Some(r) = exchange(Op::Filter, "GET", &filter_target(&name), None, Some(&name)) else {
                        failed.push(name);
                        continue;
                    };
                    // Not `r.json()`: a malformed body is already recorded as a problem.
                    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                    let hit = r.status == 200 && v["totalResults"].as_u64().unwrap_or(0) > 0;
                    if r.status != 200 || hit {
                        if r.status != 200 {
                            failed.push(name);
                        } else if let Some(id) = v["Resources"][0]["id"].as_str() {
                            known.push((id.to_string(), name));
                        }
                        continue;
                    }
                }
                let r = exchange(Op::Create, "POST", "/v2/Users", Some(&user_body(&name)), Some(&name));
                match r {
                    Some(r) if r.status == 201 => {
                        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
                        if let Some(id) = v["id"].as_str() {
                            known.push((id.to_string(), name));
                        }
                    }
                    Some(r) if r.status == 409 => {}
                    _ => failed.push(name),
                }
            }
            Op::Get | Op::Patch | Op::Delete => {
                let i = target_known.unwrap_or(0);
                let (id, name) = known[i].clone();
                let target = format!("/v2/Users/{id}");
                let patch = format!(
                    r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{{"op":"replace","path":"displayName","value":"v{n}"}}]}}"#
                );
                let (method, body) = match step {
                    Op::Get => ("GET", None),
                    Op::Patch => ("PATCH", Some(patch.as_str())),
                    _ => ("DELETE", None),
                };
                let r = exchange(step, method, &target, body, Some(&name));
                // Gone (deleted, or lost with a killed replica): stop asking about it.
                if r.is_some_and(|r| r.status == 404 || (step == Op::Delete && r.status == 204)) {
                    known.swap_remove(i);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    seen
}

/// Every userName a replica holds, read from it directly (pages of at most its maxResults).
fn stored_user_names(addr: SocketAddr) -> Vec<String> {
    let mut names = Vec::new();
    for _page in 0..100 {
        let target = format!("/v2/Users?startIndex={}&count=500&attributes=userName", names.len() + 1);
        let r = http(addr, "GET", &target, &[], None);
        assert_eq!(r.status, 200, "listing {addr} directly: {}", r.text());
        let v = r.json();
        let page: Vec<String> = v["Resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| u["userName"].as_str().map(str::to_string))
            .collect();
        let total = v["totalResults"].as_u64().unwrap_or(0) as usize;
        let done = page.is_empty();
        names.extend(page);
        if done || names.len() >= total {
            return names;
        }
    }
    panic!("{addr} still had users after 100 pages")
}

/// The replica a token's requests go to: each replica holds one `marker-N` user, seeded
/// directly, so a filtered read through the proxy names the replica that answered it.
fn home_of(px: &Proxy, token: &str) -> usize {
    let auth = format!("Bearer {token}");
    let r = px.send(
        "GET",
        "/v2/Users?filter=userName%20sw%20%22marker-%22",
        &[("Authorization", auth.as_str())],
        None,
    );
    assert_eq!(r.status, 200, "probing {token}: {}", r.text());
    let v = r.json();
    assert_eq!(v["totalResults"], 1, "one marker per replica: {v}");
    let name = v["Resources"][0]["userName"].as_str().expect("marker userName");
    name.trim_start_matches("marker-").parse().expect("marker-N")
}

/// Which replicas each request reached, by its X-Request-Id, from their own ledgers.
fn reached(logs: &[std::path::PathBuf]) -> HashMap<String, Vec<usize>> {
    let mut at: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, log) in logs.iter().enumerate() {
        for id in ledger(log) {
            at.entry(id).or_default().push(i);
        }
    }
    at
}

/// A replica that crashes while it is handling a create: the moment one enters its
/// ledger it is frozen (SIGSTOP: the create stays in flight, maybe applied, most likely not
/// answered), then killed — in-memory data gone, connections cut, the port refusing. A bare
/// kill mostly lands between two short requests; this one cuts the exchange a proxy must not
/// replay. Gives up waiting after two seconds and crashes it anyway.
fn crash_during_create(replica: &mut ScimServer, log: &std::path::Path) {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(log).expect("replica ledger");
    let mut tail = String::new();
    f.seek(SeekFrom::End(0)).expect("seek ledger");
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        let _ = f.read_to_string(&mut tail);
        if tail.contains("-Create'") {
            break;
        }
        // Only the last line matters; the rest was read.
        if let Some(nl) = tail.rfind('\n') {
            tail.drain(..nl);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    replica.signal("STOP");
    std::thread::sleep(Duration::from_millis(200));
    replica.kill();
}

#[test]
fn replicas_killed_and_restarted_under_idp_load_leave_every_request_answered_and_no_user_duplicated() {
    let _serial = serial();
    let t_test = Instant::now();
    let dir = scratch_dir("faults-replicas");
    let logs: Vec<std::path::PathBuf> = (0..3).map(|i| dir.join(format!("replica-{i}.log"))).collect();
    let mut replicas: Vec<ScimServer> = logs.iter().map(|l| ScimServer::start_recording(l)).collect();
    for (i, r) in replicas.iter().enumerate() {
        let created = http(
            r.addr,
            "POST",
            "/v2/Users",
            &[],
            Some(&user_body(&format!("marker-{i}"))),
        );
        assert_eq!(created.status, 201, "seeding replica {i}: {}", created.text());
    }
    let addrs: Vec<SocketAddr> = replicas.iter().map(|r| r.addr).collect();
    // Short health intervals so the kill and the restart are seen within a second or two; a
    // short ejection so the restarted replica is not kept out by its earlier failures; a read
    // timeout far above scim2-server's answer times, so every proxy 5xx here comes from a kill;
    // `max_conns` because scim2-server listens with a backlog of 5.
    let px = Proxy::start(&format!(
        "key_secret: faults\nupstreams:\n{}routes:\n  - base_path: /v2\n    upstream: scim\n    affinity: {{key: [token], pin_after_write: 3s}}\n",
        pool_yaml(
            "scim",
            &addrs,
            "    selection: consistent\n    health_check: {path: /v2/ServiceProviderConfig, interval: 250ms, timeout: 1s, rise: 2, fall: 2}\n    passive: {max_fails: 2, eject_for: 2s}\n    timeouts: {connect: 1s, read: 8s}\n    retries: 2\n    max_conns: 3\n    queue_timeout: 5s\n"
        )
    ));

    // Two tenants homed on each replica, so every kill takes some tenant's home away.
    let mut tokens: Vec<(String, usize)> = Vec::new();
    let mut per_home = [0usize; 3];
    for i in 0..300 {
        let token = format!("idp-tenant-{i}");
        let home = home_of(&px, &token);
        if per_home[home] < 2 {
            per_home[home] += 1;
            tokens.push((token, home));
        }
        if tokens.len() == 6 {
            break;
        }
    }
    assert_eq!(
        per_home,
        [2, 2, 2],
        "found two tokens homed on each replica: {tokens:?}"
    );

    let stop = Arc::new(AtomicBool::new(false));
    // Stops the load even when an assertion below fails, so the workers end.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, SeqCst);
        }
    }
    let _stop_guard = StopOnDrop(stop.clone());
    let t_load = Instant::now();
    let workers: Vec<_> = tokens
        .iter()
        .enumerate()
        .map(|(t, (token, _))| {
            let (addr, token, stop) = (px.addr, token.clone(), stop.clone());
            std::thread::spawn(move || idp_tenant(addr, t, token, stop))
        })
        .collect();

    // Kill the first replica; its tenants fail over and their writes pin them where they land.
    let first = 0;
    std::thread::sleep(Duration::from_millis(2500));
    let t_kill_first = Instant::now();
    crash_during_create(&mut replicas[first], &logs[first]);
    assert!(
        eventually(Duration::from_secs(5), || !px.server_healthy(0, addrs[first])),
        "the killed replica {first} left rotation"
    );
    std::thread::sleep(Duration::from_millis(1500));
    replicas[first].restart();
    let t_restarted = Instant::now();
    assert!(
        eventually(Duration::from_secs(8), || px.server_healthy(0, addrs[first])),
        "the restarted replica {first} came back"
    );
    // A tenant that keeps writing keeps its pin (each write renews it), so the first replica's
    // tenants stay where they failed over to, reading their own writes. Kill *that* replica
    // second: they then go home to the restarted one, which must take their writes.
    let displaced = tokens
        .iter()
        .position(|(_, home)| *home == first)
        .expect("a tenant of the first replica");
    let prefix = format!("faults-t{displaced}-");
    // Before the kill it only ever reached its home, so whatever the others hold is failover.
    let second = (0..3)
        .filter(|&r| r != first)
        .map(|r| (ledger(&logs[r]).iter().filter(|id| id.starts_with(&prefix)).count(), r))
        .max()
        .filter(|(n, _)| *n > 0)
        .expect("the first replica's tenant failed over to another replica")
        .1;
    let third = 3 - first - second;
    std::thread::sleep(Duration::from_millis(1500));
    let t_kill_second = Instant::now();
    crash_during_create(&mut replicas[second], &logs[second]);
    assert!(
        eventually(Duration::from_secs(5), || !px.server_healthy(0, addrs[second])),
        "the killed replica {second} left rotation"
    );
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, SeqCst);
    let load_time = t_load.elapsed();
    let seen: Vec<Seen> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("IdP tenant thread"))
        .collect();

    // --- Every request accounted for: answered, in SCIM, as the replay rules allow. ---
    let problems: Vec<String> = seen
        .iter()
        .filter_map(|s| {
            s.problem
                .as_ref()
                .map(|p| format!("{} (tenant {}, {:?}): {p}", s.request_id, s.tenant, s.elapsed))
        })
        .collect();
    let mut by_status: BTreeMap<(Op, Option<u16>), usize> = BTreeMap::new();
    for s in &seen {
        *by_status.entry((s.op, s.status)).or_default() += 1;
    }
    let slowest = seen.iter().map(|s| s.elapsed).max().unwrap_or_default();
    println!(
        "replica {first} killed and restarted, then replica {second} killed; {} requests in {load_time:?} \
         from 6 tenants; slowest answer {slowest:?}; (op, status) → count: {by_status:?}",
        seen.len()
    );
    assert!(
        problems.is_empty(),
        "{} of {} requests broke the promises:\n{}",
        problems.len(),
        seen.len(),
        problems.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(seen.len() >= 200, "the load ran: {} requests", seen.len());

    // --- The upstreams' ledgers: no create or PATCH reached a replica twice, or two replicas. ---
    let at = reached(&logs);
    let nowhere: Vec<usize> = Vec::new();
    let reached_by = |s: &Seen| at.get(&s.request_id).unwrap_or(&nowhere);
    for s in seen.iter().filter(|s| !s.op.replay_safe()) {
        assert!(
            reached_by(s).len() <= 1,
            "{} ({:?}, answered {:?}) reached replicas {:?}: it was replayed",
            s.request_id,
            s.user,
            s.status,
            reached_by(s)
        );
    }
    // An answer cut mid-way came from a replica crashing under it, nothing else.
    let cut: Vec<&Seen> = seen.iter().filter(|s| s.cut).collect();
    for s in &cut {
        let crashed_under = reached_by(s).iter().any(|&r| {
            (r == first && s.at > t_kill_first && s.at < t_restarted) || (r == second && s.at > t_kill_second)
        });
        assert!(
            crashed_under,
            "{} ({:?} {:?}) was cut mid-answer without a crash: it reached {:?}",
            s.request_id,
            s.op,
            s.status,
            reached_by(s)
        );
    }
    let creates_201: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.op == Op::Create && s.status == Some(201) && !s.cut)
        .collect();
    for s in &creates_201 {
        assert_eq!(
            reached_by(s).len(),
            1,
            "{}: a 201 from no replica's ledger",
            s.request_id
        );
    }
    let replica_of = |s: &Seen| reached_by(s)[0];
    // Traffic really was on the replicas when they died (else the kills proved nothing).
    let answered_by = |replica: usize, from: Instant, to: Instant| {
        creates_201
            .iter()
            .any(|s| s.at > from && s.at < to && replica_of(s) == replica)
    };
    assert!(
        answered_by(first, t_load, t_kill_first),
        "replica {first} took creates before its kill"
    );
    assert!(
        answered_by(second, t_kill_first, t_kill_second),
        "replica {second} took the first one's tenants"
    );
    assert!(
        answered_by(first, t_kill_second, Instant::now()),
        "the restarted replica {first} took creates again"
    );

    // --- The surviving replicas' data: no duplicate, and every 201 where it was made. ---
    let mut stored: HashMap<String, Vec<usize>> = HashMap::new();
    for i in [first, third] {
        for name in stored_user_names(addrs[i]) {
            if !name.starts_with("marker-") {
                stored.entry(name).or_default().push(i);
            }
        }
    }
    let duplicates: Vec<_> = stored.iter().filter(|(_, at)| at.len() > 1).collect();
    assert!(duplicates.is_empty(), "users stored more than once: {duplicates:?}");
    // A stored user got there by a create of that name that reached that replica.
    for (name, on) in &stored {
        let ok = seen
            .iter()
            .any(|s| s.op == Op::Create && s.user.as_deref() == Some(name.as_str()) && reached_by(s).contains(&on[0]));
        assert!(ok, "{name} is stored on replica {on:?}, where no create of it arrived");
    }
    let deleted: std::collections::HashSet<&str> = seen
        .iter()
        .filter(|s| s.op == Op::Delete && s.status == Some(204))
        .filter_map(|s| s.user.as_deref())
        .collect();
    // scim2-server keeps everything in memory: a kill loses what the replica held — the first
    // one's users up to its restart, all of the second one's. The ledgers above cover those.
    let lost = |s: &Seen| {
        let r = replica_of(s);
        (r == first && s.at < t_restarted) || r == second
    };
    let mut lost_creates = 0;
    for s in &creates_201 {
        let name = s.user.as_deref().unwrap_or_default();
        let on = stored.get(name).map(Vec::as_slice).unwrap_or_default();
        if deleted.contains(name) {
            assert!(on.is_empty(), "{name} was deleted (204) but is still on replica {on:?}");
        } else if lost(s) {
            lost_creates += 1;
        } else {
            assert_eq!(
                on,
                [replica_of(s)],
                "{name}: created (201, {}) on replica {} and never deleted",
                s.request_id,
                replica_of(s)
            );
        }
    }
    let failed_writes: Vec<&Seen> = seen
        .iter()
        .filter(|s| !s.op.replay_safe() && matches!(s.status, Some(502..=504)))
        .collect();
    let failed_but_arrived = failed_writes.iter().filter(|s| reached_by(s).len() == 1).count();
    let reads_on_two = seen
        .iter()
        .filter(|s| s.op.replay_safe() && reached_by(s).len() > 1)
        .count();
    println!(
        "{} creates answered 201 ({lost_creates} lost with a killed replica), {} users on the surviving replicas; \
         {} creates/PATCHes answered with a SCIM 5xx ({failed_but_arrived} of them had reached a replica, none replayed); \
         {reads_on_two} reads/deletes retried on a second replica after reaching a first; \
         {} answers cut mid-way by a crash; test took {:?}",
        creates_201.len(),
        stored.len(),
        failed_writes.len(),
        cut.len(),
        t_test.elapsed()
    );
    // Kept when the test fails: the ledgers say what reached each replica.
    drop(replicas);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// 2. A black-hole upstream and a slow one beside a healthy scim2-server.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_black_hole_and_a_slow_upstream_get_scim_504s_in_time_and_are_ejected_while_the_healthy_one_serves() {
    let _serial = serial();
    const READ: Duration = Duration::from_secs(1);
    // Generous on a loaded two-core machine; still far below "hung".
    const MARGIN: Duration = Duration::from_secs(3);
    let hole = BlackHole::start();
    let slow = TestUpstream::start("slow", Behavior::Stall(READ * 6));
    let good = ScimServer::start();
    let servers = [hole.addr, slow.addr, good.addr];
    // No active health check: ejection here can only be passive.
    let pool = |passive: &str| {
        pool_yaml(
            "p",
            &servers,
            &format!("    selection: round_robin\n    timeouts: {{connect: 1s, read: 1s}}\n    passive: {passive}\n    retries: 2\n"),
        )
    };
    let routes = "routes:\n  - base_path: /v2\n    upstream: p\n";
    let px = Proxy::start(&format!(
        "upstreams:\n{}{routes}",
        pool("{max_fails: 2, eject_for: 60s}")
    ));

    // Six creates at once: round robin gives each server two. Creates are never replayed, so
    // the four that reach the black hole or the slow server must come back as SCIM 504s.
    let addr = px.addr;
    let creates: Vec<_> = (0..6)
        .map(|i| {
            std::thread::spawn(move || {
                let (r, elapsed) = timed(addr, "POST", "/v2/Users", &[], Some(&user_body(&format!("bh-{i}"))));
                (r.expect("an answer to every create"), elapsed)
            })
        })
        .collect();
    let creates: Vec<(Response, Duration)> = creates.into_iter().map(|t| t.join().expect("create thread")).collect();
    let ok: Vec<&(Response, Duration)> = creates.iter().filter(|(r, _)| r.status == 201).collect();
    let timed_out: Vec<&(Response, Duration)> = creates.iter().filter(|(r, _)| r.status == 504).collect();
    println!(
        "six creates: {:?}",
        creates.iter().map(|(r, d)| (r.status, *d)).collect::<Vec<_>>()
    );
    assert_eq!(
        (ok.len(), timed_out.len()),
        (2, 4),
        "two created on the healthy server, four timed out"
    );
    for (r, elapsed) in &timed_out {
        let detail = r.assert_scim_error(504);
        assert!(detail.contains("in time"), "{detail}");
        assert!(
            *elapsed >= READ - Duration::from_millis(50) && *elapsed < READ + MARGIN,
            "a 504 comes after the read timeout ({READ:?}), not much later: {elapsed:?}"
        );
    }
    // The healthy server's creates were not held up by the stuck ones beside them.
    let slowest_ok = ok.iter().map(|(_, d)| *d).max().unwrap_or_default();
    let fastest_504 = timed_out.iter().map(|(_, d)| *d).min().unwrap_or_default();
    assert!(
        slowest_ok < READ && slowest_ok < fastest_504,
        "creates on the healthy server answered while the others waited: {slowest_ok:?} vs {fastest_504:?}"
    );
    assert_eq!(hole.accepted(), 2, "the black hole got two connections");
    assert_eq!(slow.hits(), 2, "the slow server got two requests");

    // Two timeouts in a row each: both are out for eject_for, the healthy one is not.
    let s = px.status();
    let server = |i: usize| s["pools"][0]["servers"][i].clone();
    for (i, name) in [(0, "black hole"), (1, "slow server")] {
        assert_eq!(server(i)["ejections"], 1, "{name} ejected: {}", server(i));
        assert!(
            server(i)["ejected_ms"].as_u64().unwrap_or(0) > 50_000,
            "{name} out for eject_for: {}",
            server(i)
        );
    }
    assert_eq!(server(2)["ejections"], 0, "{}", server(2));
    assert!(px.log().contains("ejected for 60s after 2 consecutive failures"));

    // From now on every request goes to the healthy server, quickly, whatever the method.
    let id = ok[0].0.json()["id"].as_str().expect("created id").to_string();
    let rs: Vec<_> = (0..4)
        .map(|t| {
            let id = id.clone();
            std::thread::spawn(move || {
                (0..3)
                    .map(|k| {
                        let (method, target, body) = match k {
                            0 => ("GET", "/v2/Users".to_string(), None),
                            1 => ("GET", format!("/v2/Users/{id}"), None),
                            _ => ("POST", "/v2/Users".to_string(), Some(user_body(&format!("after-{t}")))),
                        };
                        let (r, elapsed) = timed(addr, method, &target, &[], body.as_deref());
                        let r = r.expect("an answer");
                        (method, r.status, elapsed)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let rs: Vec<(&str, u16, Duration)> = rs.into_iter().flat_map(|t| t.join().expect("thread")).collect();
    for (method, status, elapsed) in &rs {
        assert!(
            matches!(status, 200 | 201) && *elapsed < READ,
            "{method} after the ejections: {status} in {elapsed:?} (all: {rs:?})"
        );
    }
    assert_eq!(hole.accepted(), 2, "nothing more reached the black hole");
    assert_eq!(slow.hits(), 2, "nothing more reached the slow server");

    // Without ejection, a read (replay-safe) that meets the black hole or the slow server is
    // answered by the healthy one after the read timeout(s) instead of failing — and pays for
    // them every time.
    let px = Proxy::start(&format!("upstreams:\n{}{routes}", pool("{max_fails: 0}")));
    let before = (hole.accepted(), slow.hits());
    for _ in 0..2 {
        let (r, elapsed) = timed(px.addr, "GET", "/v2/Users", &[], None);
        let r = r.expect("an answer to the read");
        assert_eq!(r.status, 200, "a read is retried onto the healthy server: {}", r.text());
        assert!(
            elapsed < READ * 2 + MARGIN,
            "at most two read timeouts before the healthy server: {elapsed:?}"
        );
    }
    assert!(
        hole.accepted() > before.0 && slow.hits() > before.1,
        "the reads did meet the black hole and the slow server first"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. A Redis that stalls instead of refusing.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_stalled_redis_costs_each_request_at_most_its_timeout_and_local_limits_take_over() {
    let _serial = serial();
    // Two policies on the route, each a Redis decision: the bound is one timeout per request
    // (the first timeout puts Redis in backoff for the second), so the margin stays below a
    // second timeout.
    const TIMEOUT: Duration = Duration::from_millis(600);
    const MARGIN: Duration = Duration::from_millis(400);
    // 20/s with a burst of 10 per tenant: low enough that the local fallback visibly limits.
    const RATE: f64 = 20.0;
    const BURST: f64 = 10.0;
    let redis = RedisServer::start();
    let up = TestUpstream::start("u", Behavior::Echo);
    let px = Proxy::start(&format!(
        "upstreams:\n{}routes:\n  - base_path: /{{tenant}}/scim/v2\n    upstream: p\n    rate_limits: [per-tenant, per-ip]\nrate_limits:\n  store: redis\n  policies:\n    per-tenant: {{key: [tenant], rate: 20/s, burst: 10}}\n    per-ip: {{key: [client_ip], rate: 1000/s, burst: 1000}}\nredis: {{url: \"{}\", timeout: 600ms, backoff: 500ms}}\n",
        pool_yaml("p", &[up.addr], ""),
        redis.url()
    ));
    let redis_stats = || px.status()["rate_limits"]["redis"].clone();
    let count = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    assert!(
        eventually(Duration::from_secs(5), || {
            px.get("/acme/scim/v2/Users");
            count(&redis_stats(), "shared_decisions") > 0
        }),
        "shared limits in use before the stall: {}",
        redis_stats()
    );

    // SIGSTOP: the connection stays open and connects still succeed, but nothing answers.
    let stalled = redis.stall();
    let before = redis_stats();
    let addr = px.addr;
    let t0 = Instant::now();
    let threads: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let start = Instant::now();
                while start.elapsed() < Duration::from_millis(2500) && out.len() < 5_000 {
                    let (r, elapsed) = timed(addr, "GET", "/acme/scim/v2/Users", &[], None);
                    out.push((r.expect("an answer while Redis is stalled"), elapsed));
                }
                out
            })
        })
        .collect();
    let answers: Vec<(Response, Duration)> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("client thread"))
        .collect();
    let window = t0.elapsed();
    let admitted = answers.iter().filter(|(r, _)| r.status == 200).count();
    let slowest = answers.iter().map(|(_, d)| *d).max().unwrap_or_default();
    let waited = answers
        .iter()
        .filter(|(_, d)| *d >= TIMEOUT - Duration::from_millis(20))
        .count();
    println!(
        "redis stalled: {} answers in {window:?}, {admitted} admitted, slowest {slowest:?}, {waited} waited out the redis timeout",
        answers.len()
    );
    for (r, elapsed) in &answers {
        assert!(
            *elapsed < TIMEOUT + MARGIN,
            "an answer within the redis timeout ({TIMEOUT:?}) plus margin: {elapsed:?}"
        );
        if r.status != 200 {
            r.assert_scim_error(429);
            assert!(
                r.header("retry-after").is_some(),
                "a local 429 still says when to retry"
            );
        }
    }
    assert!(
        waited > 0,
        "some requests did wait for the stalled Redis (else nothing was tested)"
    );
    assert!(admitted > 0, "requests keep flowing");
    let local_limit = RATE * window.as_secs_f64() + BURST;
    assert!(
        (admitted as f64) <= 1.2 * local_limit,
        "the local limiter still limits: {admitted} admitted, {local_limit:.0} allowed locally"
    );
    let during = redis_stats();
    assert!(
        count(&during, "local_fallbacks") > count(&before, "local_fallbacks"),
        "decisions fell back to local: {during}"
    );
    assert_eq!(during["up"], false, "{during}");
    let log = px.log();
    assert!(
        log.lines()
            .any(|l| l.contains("redis") && l.contains("fall back to local")),
        "the stall is logged:\n{log}"
    );

    // SIGCONT: shared decisions resume by themselves.
    drop(stalled);
    let shared = count(&during, "shared_decisions");
    assert!(
        eventually(Duration::from_secs(10), || {
            px.get("/acme/scim/v2/Users");
            count(&redis_stats(), "shared_decisions") > shared
        }),
        "shared limits resume after the stall: {}",
        redis_stats()
    );
}
