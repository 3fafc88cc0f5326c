//! The HTTP floor: the bench's receiver (signature check, JSON parse, bookkeeping) loaded with
//! one signed request, by `wrk` when it is on PATH, else by an in-process reqwest load
//! generator.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use super::HttpFloor;
use crate::ctx::Ctx;
use crate::receiver::{Behaviour, BenchReceiver};
use crate::run::endpoints::{EVERY_TYPE, endpoint};

/// Connections the load generator keeps open.
const CONNECTIONS: usize = 64;

/// Loads a fresh receiver for `secs` seconds.
pub async fn http_floor(ctx: &Ctx, secs: u64) -> anyhow::Result<HttpFloor> {
    let spec = endpoint("floor", EVERY_TYPE, 0, Behaviour::Ok, false);
    let secret = standardwebhooks::Webhook::new(&spec.secret)
        .map_err(|e| anyhow::anyhow!("floor secret: {e:?}"))?;
    let recv = BenchReceiver::start(vec![spec], 1, 1, Instant::now()).await?;
    let pad = "x".repeat(ctx.opts.payload_bytes.saturating_sub(80));
    let req = Request::signed(&secret, recv.url(0), &pad)?;
    let mut floor = match find_on_path("wrk") {
        Some(wrk) => with_wrk(ctx, &wrk, &req, secs).await?,
        None => {
            println!(
                "  floor: wrk not found on PATH (apt-get install -y wrk); using an in-process reqwest load generator"
            );
            with_reqwest(&req, secs).await?
        }
    };
    floor.bad_signatures = recv.state.totals().bad_signatures;
    Ok(floor)
}

/// The one request sent over and over, signed as outboxd signs.
struct Request {
    url: String,
    body: String,
    id: &'static str,
    ts: i64,
    sig: String,
}

impl Request {
    fn signed(
        secret: &standardwebhooks::Webhook,
        url: String,
        pad: &str,
    ) -> anyhow::Result<Request> {
        let body = format!(r#"{{"k":0,"n":0,"s":1,"t":0,"pad":"{pad}"}}"#);
        let id = "evt_0000000000000000000000000000";
        // The receiver accepts a timestamp within 5 minutes of now (the Standard Webhooks
        // tolerance), far longer than a floor run.
        let ts = chrono::Utc::now().timestamp();
        let sig = secret
            .sign(id, ts, body.as_bytes())
            .map_err(|e| anyhow::anyhow!("signing the floor request: {e:?}"))?;
        Ok(Request {
            url,
            body,
            id,
            ts,
            sig,
        })
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// `wrk -t1` with a Lua script that POSTs the request.
async fn with_wrk(ctx: &Ctx, wrk: &Path, req: &Request, secs: u64) -> anyhow::Result<HttpFloor> {
    let script = ctx.out_dir.join("floor-wrk.lua");
    std::fs::create_dir_all(&ctx.out_dir)?;
    let Request {
        url,
        body,
        id,
        ts,
        sig,
    } = req;
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\n\
             wrk.body = '{body}'\n\
             wrk.headers[\"content-type\"] = \"application/json\"\n\
             wrk.headers[\"user-agent\"] = \"outboxd/bench\"\n\
             wrk.headers[\"webhook-id\"] = \"{id}\"\n\
             wrk.headers[\"webhook-timestamp\"] = \"{ts}\"\n\
             wrk.headers[\"webhook-signature\"] = \"{sig}\"\n"
        ),
    )?;
    let out = tokio::process::Command::new(wrk)
        .args([
            "-t1",
            &format!("-c{CONNECTIONS}"),
            &format!("-d{secs}s"),
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .await
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .with_context(|| format!("could not read wrk's output:\n{text}"))?;
    let errors = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Ok(HttpFloor {
        tool: "wrk -t1".into(),
        requests_per_second: rps,
        seconds: secs as f64,
        connections: CONNECTIONS,
        bad_signatures: 0,
        errors,
        detail: text,
    })
}

/// An in-process reqwest load generator (it shares this process's runtime).
async fn with_reqwest(req: &Request, secs: u64) -> anyhow::Result<HttpFloor> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .tcp_nodelay(true)
        .build()?;
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs(secs);
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let (client, url, body, sig, ok, errors) = (
            client.clone(),
            req.url.clone(),
            req.body.clone(),
            req.sig.clone(),
            ok.clone(),
            errors.clone(),
        );
        let (id, ts) = (req.id, req.ts);
        set.spawn(async move {
            while Instant::now() < end {
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("webhook-id", id)
                    .header("webhook-timestamp", ts.to_string())
                    .header("webhook-signature", &sig)
                    .body(body.clone())
                    .send()
                    .await;
                match r {
                    Ok(resp) if resp.status().is_success() => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
    let secs_f = t0.elapsed().as_secs_f64();
    Ok(HttpFloor {
        tool: "reqwest (in-process)".into(),
        requests_per_second: ok.load(Ordering::Relaxed) as f64 / secs_f,
        seconds: secs_f,
        connections: CONNECTIONS,
        bad_signatures: 0,
        errors: errors.load(Ordering::Relaxed),
        detail: String::new(),
    })
}
