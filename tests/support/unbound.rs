//! A real unbound (Debian's) on loopback for the DNS tests: UDP and TCP on 127.0.0.1 and
//! ::1, DNS over TLS and DNS over HTTPS with a certificate from the test CA, and a local
//! zone `kpatrol.test.` that never recurses anywhere.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use super::{Pki, free_port};

pub struct Unbound {
    child: Child,
    pub pki: Pki,
    /// UDP and TCP, on 127.0.0.1 and ::1.
    pub port: u16,
    pub dot_port: u16,
    pub doh_port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ZONE: &str = r#"
  local-zone: "kpatrol.test." static
  local-data: "web.kpatrol.test. 60 IN A 127.0.0.10"
  local-data: "web.kpatrol.test. 60 IN AAAA ::1"
  local-data: "alias.kpatrol.test. 60 IN CNAME web.kpatrol.test."
  local-data: "txt.kpatrol.test. 60 IN TXT \"hello kpatrol\""
  local-data: "mail.kpatrol.test. 60 IN MX 10 mx1.kpatrol.test."
  local-data: "_http._tcp.kpatrol.test. 60 IN SRV 0 5 80 web.kpatrol.test."
  local-zone: "refused.test." refuse
  local-zone: "." refuse
"#;

impl Unbound {
    /// Starts unbound and waits until its TCP, DoT and DoH ports accept.
    pub fn start() -> Unbound {
        let pki = Pki::new();
        let dir = tempfile::tempdir().unwrap();
        let (port, dot_port, doh_port) = (free_port(), free_port(), free_port());
        let d = dir.path().display();
        let mut big = String::new();
        for i in 1..=60 {
            big += &format!("  local-data: \"big.kpatrol.test. 60 IN A 127.0.1.{i}\"\n");
        }
        let conf = format!(
            r#"server:
  username: ""
  chroot: ""
  directory: "{d}"
  pidfile: "{d}/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 0
  do-daemonize: no
  num-threads: 1
  interface: 127.0.0.1@{port}
  interface: ::1@{port}
  interface: 127.0.0.1@{dot_port}
  interface: 127.0.0.1@{doh_port}
  tls-port: {dot_port}
  https-port: {doh_port}
  http-endpoint: "/dns-query"
  tls-service-key: "{key}"
  tls-service-pem: "{cert}"
  do-ip4: yes
  do-ip6: yes
  do-udp: yes
  do-tcp: yes
  access-control: 127.0.0.0/8 allow
  access-control: ::1/128 allow
  do-not-query-localhost: no
  minimal-responses: yes
{ZONE}{big}remote-control:
  control-enable: no
"#,
            key = pki.server_key.display(),
            cert = pki.server_cert.display(),
        );
        let path = dir.path().join("unbound.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("unbound")
            .arg("-d")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("unbound must be installed (apt-get install unbound; .ci/run does it)");
        let u = Unbound {
            child,
            pki,
            port,
            dot_port,
            doh_port,
            _dir: dir,
        };
        // one 10 s budget for the three ports
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        for p in [port, dot_port, doh_port] {
            super::wait_port(
                p,
                "unbound",
                deadline.saturating_duration_since(std::time::Instant::now()),
            );
        }
        u
    }

    pub fn v4(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}
