//! The plugin process: started on first use (`hello` first), one request at a time, each with
//! its time limit; stopped on any failure to answer (the next request starts it again) and
//! killed when the target is dropped (after a `bye` it gets a moment to exit on its own).
//!
//! The process gets the command's arguments and an environment of [`INHERITED_ENV`] plus the
//! config's `env:`; values travel only in request lines on its stdin. Its stderr is logged at
//! debug level, line by line (cut at 2 KiB); nothing SecretSync sends is ever logged.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secretsync_core::targets::plugin::{INHERITED_ENV, PluginSettings};
use serde_json::{Map, Value};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Mutex;
use tracing::debug;

use super::error;
use super::protocol::{self, Answer, Hello, Line};
use crate::error::{Error, Result};

/// How long a plugin has to exit after `bye` before it is killed.
const BYE_GRACE: Duration = Duration::from_secs(2);
/// Longest stderr line logged, in bytes.
const MAX_STDERR_LINE: usize = 2048;

/// A request's outcome: the `ok` object, or the plugin's error (code, message).
pub enum Reply {
    Ok(Map<String, Value>),
    Refused { code: String, message: String },
}

struct Running {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
    hello: Hello,
    /// A request was sent and its answer not read (its future was dropped): the session is out
    /// of step and is not reused.
    in_flight: bool,
    /// Stopped for a failure: killed, no `bye`.
    broken: bool,
}

impl Drop for Running {
    fn drop(&mut self) {
        let (Some(mut child), stdin) = (self.child.take(), self.stdin.take()) else {
            return;
        };
        if self.broken || self.in_flight {
            let _ = child.start_kill();
            return;
        }
        let id = self.next_id;
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Some(mut stdin) = stdin {
                        let line = protocol::encode(id, &protocol::request("bye", Value::Null));
                        let _ = stdin.write_all(&line).await;
                        let _ = stdin.flush().await;
                        drop(stdin);
                    }
                    if tokio::time::timeout(BYE_GRACE, child.wait()).await.is_err() {
                        let _ = child.start_kill();
                    }
                });
            }
            Err(_) => {
                let _ = child.start_kill();
            }
        }
    }
}

/// One plugin, started when first needed.
pub struct Session {
    target: String,
    settings: PluginSettings,
    command: String,
    running: Mutex<Option<Running>>,
    calls: AtomicU64,
    observers: crate::observe::Observers,
    endpoint: crate::observe::Endpoint,
}

impl Session {
    pub fn new(target: &str, settings: &PluginSettings) -> Session {
        Session {
            target: target.to_string(),
            command: settings.display_command(),
            settings: settings.clone(),
            running: Mutex::new(None),
            calls: AtomicU64::new(0),
            observers: Default::default(),
            endpoint: crate::observe::Endpoint::plugin(target),
        }
    }

    /// Every request is admitted by and reported to `observers` (metrics, circuit breakers,
    /// tracing) as `plugin/<target>`, under its `op`.
    pub fn observed(mut self, observers: crate::observe::Observers) -> Session {
        self.observers = observers;
        self
    }

    /// The command, for messages.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Requests sent so far (`hello` included).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// What the running plugin announced (it is started if needed).
    pub async fn hello(&self) -> Result<Hello> {
        let mut guard = self.running.lock().await;
        Ok(self.ensure(&mut guard).await?.hello.clone())
    }

    /// Sends one request (`body` with its `op`; a caller whose body holds a value keeps it in a
    /// `SecretValue`, wiped when dropped) and reads its answer. A failure to answer stops the
    /// plugin.
    pub async fn call(&self, op: &str, body: &Map<String, Value>) -> Result<Reply> {
        let outcome = |r: &Result<Reply>| {
            use crate::observe::Outcome;
            match r {
                Ok(Reply::Ok(_)) => Outcome::Ok,
                Ok(Reply::Refused { code, .. }) => match code.as_str() {
                    "not_found" => Outcome::Ok,
                    "unavailable" => Outcome::Failed,
                    _ => Outcome::Refused,
                },
                // It crashed, hung or spoke garbage.
                Err(_) => Outcome::Failed,
            }
        };
        crate::observe::observed(
            &self.observers,
            &self.endpoint,
            op,
            outcome,
            self.call_unobserved(op, body),
        )
        .await?
    }

    async fn call_unobserved(&self, op: &str, body: &Map<String, Value>) -> Result<Reply> {
        let mut guard = self.running.lock().await;
        let r = self.ensure(&mut guard).await?;
        match self.exchange(r, op, body).await {
            Ok(Answer::Ok(ok)) => Ok(Reply::Ok(ok)),
            Ok(Answer::Err { code, message }) => Ok(Reply::Refused { code, message }),
            Err(e) => {
                if let Some(mut r) = guard.take() {
                    r.broken = true;
                }
                Err(e)
            }
        }
    }

    async fn ensure<'g>(&self, guard: &'g mut Option<Running>) -> Result<&'g mut Running> {
        if guard.as_ref().is_some_and(|r| r.in_flight || r.broken) {
            *guard = None;
        }
        if guard.is_none() {
            *guard = Some(self.start().await?);
        }
        Ok(guard.as_mut().expect("started"))
    }

    async fn start(&self) -> Result<Running> {
        let s = &self.settings;
        let Some((program, args)) = s.command.split_first() else {
            return Err(Error::config("the plugin has no command"));
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for k in INHERITED_ENV {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        for (k, v) in &s.env {
            cmd.env(k, v.expose());
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| error::not_started(&self.command, &e))?;
        debug!(target_name = %self.target, plugin = %self.command, pid = child.id(), "started the plugin");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        if let Some(stderr) = child.stderr.take() {
            let (target, command) = (self.target.clone(), self.command.clone());
            tokio::spawn(async move {
                let mut r = BufReader::new(stderr);
                loop {
                    match protocol::read_line(&mut r, MAX_STDERR_LINE).await {
                        Ok(Line::Line(l)) => {
                            debug!(target_name = %target, plugin = %command, line = %String::from_utf8_lossy(&l), "plugin stderr")
                        }
                        Ok(Line::TooLong) => {
                            debug!(target_name = %target, plugin = %command, "plugin stderr: a line longer than 2 KiB (not shown)")
                        }
                        Ok(Line::Eof) | Err(_) => break,
                    }
                }
            });
        }
        let mut running = Running {
            child: Some(child),
            stdin,
            stdout: BufReader::with_capacity(64 << 10, stdout),
            next_id: 1,
            hello: Hello::default(),
            in_flight: false,
            broken: false,
        };
        let hello = match self
            .exchange(&mut running, "hello", &protocol::hello())
            .await
        {
            Ok(Answer::Ok(ok)) => protocol::parse_hello(&ok)
                .map_err(|b| error::bad_answer(&self.command, "hello", &b)),
            Ok(Answer::Err { code, message }) => Err(error::refused(
                &format!("the plugin `{}` refused `hello`", self.command),
                &code,
                &message,
            )),
            Err(e) => Err(e),
        };
        match hello {
            Ok(h) => {
                running.hello = h;
                Ok(running)
            }
            Err(e) => {
                running.broken = true;
                Err(e)
            }
        }
    }

    /// One request and its answer, within the time limit.
    async fn exchange(
        &self,
        r: &mut Running,
        op: &str,
        body: &Map<String, Value>,
    ) -> Result<Answer> {
        let id = r.next_id;
        r.next_id += 1;
        let limit = self.settings.timeout;
        let command = self.command.as_str();
        r.in_flight = true;
        self.calls.fetch_add(1, Ordering::Relaxed);
        // `Err(None)`: the plugin is gone (how it ended is looked up below).
        let io = async {
            let line = protocol::encode(id, body);
            let stdin = r.stdin.as_mut().ok_or(None)?;
            if let Err(e) = async {
                stdin.write_all(&line).await?;
                stdin.flush().await
            }
            .await
            {
                return Err(match e.kind() {
                    std::io::ErrorKind::BrokenPipe => None,
                    _ => Some(error::io(command, op, &e)),
                });
            }
            drop(line);
            match protocol::read_line(&mut r.stdout, protocol::MAX_LINE).await {
                Ok(Line::Line(l)) => protocol::parse_answer(&l, id)
                    .map_err(|b| Some(error::bad_answer(command, op, &b))),
                Ok(Line::TooLong) => Err(Some(error::too_long(command, op, protocol::MAX_LINE))),
                Ok(Line::Eof) => Err(None),
                Err(e) => Err(Some(error::io(command, op, &e))),
            }
        };
        let out = match tokio::time::timeout(limit, io).await {
            Ok(res) => res,
            Err(_) => Err(Some(error::timed_out(command, op, limit))),
        };
        r.in_flight = false;
        match out {
            Ok(a) => Ok(a),
            Err(Some(e)) => Err(e),
            Err(None) => {
                // How it ended (a moment for the exit to be seen).
                let mut status = None;
                if let Some(child) = r.child.as_mut() {
                    status = tokio::time::timeout(Duration::from_millis(500), child.wait())
                        .await
                        .ok()
                        .and_then(|s| s.ok())
                        .map(|s| s.to_string());
                }
                Err(error::exited(command, op, status))
            }
        }
    }
}
