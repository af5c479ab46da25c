//! Real PostgreSQL and MariaDB servers from the distribution for the SQL tests: each on
//! 127.0.0.1 with its own data directory and port, stopped when dropped. As root (tests and
//! CI run so), PostgreSQL runs as nobody, which it requires.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Pki, free_port};

pub const USER: &str = "kpatrol";
pub const PASSWORD: &str = "s3cret-Pa55word";
/// Who runs the servers when the tests run as root (PostgreSQL refuses root).
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `path` (and everything under it) handed to the servers' user when running as root.
fn give(path: &Path) {
    if !is_root() {
        return;
    }
    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            give(&e.unwrap().path());
        }
    }
}

/// Waits, at most 30 s, until `ready` holds (polled every 50 ms).
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "{what} did not become ready in 30 s");
        std::thread::sleep(Duration::from_millis(50)); // polling a condition, bounded
    }
}

/// A server process, stopped (its shutdown signal, then SIGKILL after 10 s) when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// What stops it at once, its clients still connected (PostgreSQL: SIGINT, a fast
    /// shutdown; SIGTERM would wait for them).
    signal: i32,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as i32, self.signal) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pg_bin(name: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (apt-get install postgresql)")
        .map(|e| e.unwrap().path().join("bin"))
        .filter(|p| p.join(name).exists())
        .collect();
    dirs.sort();
    dirs.pop().expect("a PostgreSQL bin folder").join(name)
}

fn as_server_user(cmd: &mut Command) -> &mut Command {
    if is_root() {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    cmd
}

/// A private PostgreSQL on 127.0.0.1 (superuser `kpatrol`, password [`PASSWORD`],
/// scram-sha-256), with TLS from the test CA when `tls` is given.
pub fn postgres(tls: Option<&Pki>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    give(dir.path());
    let data = dir.path().join("data");
    let out = as_server_user(&mut Command::new(pg_bin("initdb")))
        .arg("-D")
        .arg(&data)
        .args(["-U", USER, "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"])
        .arg(format!("--pwfile={}", pw.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
    let port = free_port();
    let mut conf = format!(
        "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nfsync = off\nmax_connections = 60\n",
        dir.path().display()
    );
    if let Some(pki) = tls {
        std::fs::copy(&pki.server_cert, data.join("server.crt")).unwrap();
        std::fs::copy(&pki.server_key, data.join("server.key")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
        give(&data);
        conf += "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n";
    }
    let mut c = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
    c += &conf;
    std::fs::write(data.join("postgresql.conf"), c).unwrap();
    let child = as_server_user(&mut Command::new(pg_bin("postgres")))
        .arg("-D")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server {
        child,
        port,
        dir,
        signal: libc::SIGINT,
    };
    let isready = pg_bin("pg_isready");
    wait_until("PostgreSQL", || {
        Command::new(&isready)
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    });
    server
}

/// A private MariaDB on 127.0.0.1 with a user `kpatrol` (password [`PASSWORD`]) allowed
/// from anywhere.
pub fn mariadb() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let install = ["mariadb-install-db", "mysql_install_db"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--help")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        })
        .expect("MariaDB is installed (apt-get install mariadb-server)");
    let out = Command::new(install)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args(["--skip-test-db", "--auth-root-authentication-method=socket"])
        .arg(format!("--user={}", if is_root() { "root" } else { "" }))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mariadb-install-db: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let init = dir.path().join("init.sql");
    std::fs::write(
        &init,
        format!("CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}';\nGRANT ALL ON *.* TO '{USER}'@'%';\n"),
    )
    .unwrap();
    let port = free_port();
    let d = dir.path();
    let mariadbd = ["/usr/sbin/mariadbd", "/usr/sbin/mysqld"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("mariadbd");
    let mut cmd = Command::new(mariadbd);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--socket={}/sock", d.display()))
        .arg(format!("--pid-file={}/pid", d.display()))
        .arg(format!("--init-file={}", init.display()))
        .arg(format!("--log-error={}/err.log", d.display()))
        .args(["--skip-name-resolve", "--skip-log-bin", "--innodb-buffer-pool-size=16M"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if is_root() {
        cmd.arg("--user=root");
    }
    let child = cmd.spawn().unwrap();
    let server = Server {
        child,
        port,
        dir,
        signal: libc::SIGTERM,
    };
    let log = server.dir.path().join("err.log");
    wait_until("MariaDB", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("ready for connections"))
            && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    server
}

/// Runs `sql` with psql on the PostgreSQL on `port` as its superuser, for what a test does
/// beside the round (terminating backends, looking at pg_stat_activity): its output, one
/// line per row, fields separated by `|`.
pub async fn psql(port: u16, sql: &str) -> String {
    let out = tokio::process::Command::new(pg_bin("psql"))
        .args([
            "-X",
            "-q",
            "-t",
            "-A",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            USER,
            "-d",
            "postgres",
            "-c",
            sql,
        ])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Writes the Secret `db-creds` (`username`, `password`) under the mounts root `dir`.
pub fn write_credentials(dir: &Path, password: &str) {
    let s = dir.join("secrets/db-creds");
    std::fs::create_dir_all(&s).unwrap();
    std::fs::write(s.join("username"), format!("{USER}\n")).unwrap();
    std::fs::write(s.join("password"), password).unwrap();
}
