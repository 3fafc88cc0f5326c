//! Managing endpoints from the console or a tenant's portal: add, edit, delete, read the
//! secrets. In a tenant's scope every statement filters on the tenant in SQL, a new endpoint
//! belongs to the tenant, and an endpoint of another tenant (or an internal one) is "not
//! found".

use super::{Error, Scope, col};
use crate::replica::Replica;
use crate::sql::eventlog as q;

/// The longest description kept.
pub const MAX_DESCRIPTION: usize = 500;

/// An endpoint URL the SSRF policy allows (IP literals checked now, names at each
/// connection); the normalized URL is what gets stored.
pub(crate) fn check_url(replica: &Replica, raw: &str) -> Result<String, Error> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 2048 {
        return Err(Error::invalid("url", "must be 1 to 2048 characters"));
    }
    let parsed = url::Url::parse(raw)
        .map_err(|e| Error::invalid("url", format!("not a valid URL ({e})")))?;
    crate::ssrf::check_url(&parsed, replica.sender.policy())
        .map_err(|e| Error::invalid("url", e.to_string()))?;
    Ok(String::from(parsed))
}

fn check_types(types: &[String]) -> Result<(), Error> {
    if types.is_empty() || types.len() > 100 {
        return Err(Error::invalid(
            "event_types",
            "choose 1 to 100 event types or patterns",
        ));
    }
    for t in types {
        crate::pattern::Pattern::parse(t)
            .map_err(|e| Error::invalid("event_types", e.to_string()))?;
    }
    Ok(())
}

fn check_description(d: &str) -> Result<(), Error> {
    if d.chars().count() > MAX_DESCRIPTION || d.contains('\0') {
        return Err(Error::invalid(
            "description",
            "must be at most 500 characters, without NUL",
        ));
    }
    Ok(())
}

/// A new endpoint: the scope's tenant's (internal for the operator), enabled, with one
/// subscription. Returns its id and secret (shown once).
pub(crate) async fn create(
    db: &mut crate::db::Conn,
    replica: &Replica,
    scope: &Scope,
    url: &str,
    description: &str,
    event_types: &[String],
) -> Result<(i64, String), Error> {
    let url = check_url(replica, url)?;
    check_description(description)?;
    check_types(event_types)?;
    let tx = db.transaction().await?;
    let row = tx
        .query_one(
            crate::sql::admin::ENDPOINT_INSERT,
            &[
                &url,
                &scope.tenant(),
                &false,
                &None::<String>,
                &serde_json::json!({}),
                &true,
                &16i32,
                &None::<f64>,
                &description,
                &None::<String>,
                &None::<String>,
                &None::<f64>,
                &None::<String>,
            ],
        )
        .await?;
    let id: i64 = col(&row, "id")?;
    let secret: String = col(&row, "secret")?;
    tx.query_one(
        crate::sql::admin::SUBSCRIPTION_INSERT,
        &[&id, &event_types, &true, &None::<String>],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(endpoint_id = id, "event log: endpoint created");
    Ok((id, secret))
}

/// Change an endpoint's URL (`None`: keep it) and description, and (when given) replace its
/// subscriptions with one to `event_types` (content filters of the old ones go).
pub(crate) async fn edit(
    db: &mut crate::db::Conn,
    replica: &Replica,
    scope: &Scope,
    id: i64,
    url: Option<&str>,
    description: &str,
    event_types: Option<&[String]>,
) -> Result<(), Error> {
    let url = url.map(|u| check_url(replica, u)).transpose()?;
    check_description(description)?;
    if let Some(t) = event_types {
        check_types(t)?;
    }
    let not_found = || Error::NotFound(format!("endpoint {id} does not exist"));
    let tx = db.transaction().await?;
    tx.query_opt(
        q::ENDPOINT_EDIT,
        &[&id, &url, &description, &scope.tenant()],
    )
    .await?
    .ok_or_else(not_found)?;
    if let Some(t) = event_types {
        tx.query_opt(q::SUBSCRIPTIONS_REPLACE, &[&id, &t, &scope.tenant()])
            .await?
            .ok_or_else(not_found)?;
    }
    tx.commit().await?;
    tracing::info!(endpoint_id = id, "event log: endpoint changed");
    Ok(())
}

/// Delete an endpoint with its subscriptions, deliveries and lanes (attempts stay).
pub(crate) async fn delete(db: &mut crate::db::Conn, scope: &Scope, id: i64) -> Result<(), Error> {
    let tx = db.transaction().await?;
    tx.execute(crate::sql::admin::ROUTING_LOCK, &[&crate::locks::ROUTER])
        .await?;
    tx.query_opt(q::ENDPOINT_DELETE, &[&id, &scope.tenant()])
        .await?
        .ok_or_else(|| Error::NotFound(format!("endpoint {id} does not exist")))?;
    tx.commit().await?;
    tracing::info!(endpoint_id = id, "event log: endpoint deleted");
    Ok(())
}

/// The active secrets of an endpoint, newest first (an explicit read: logged).
pub(crate) async fn secrets(
    db: &crate::db::Conn,
    scope: &Scope,
    id: i64,
) -> Result<Vec<String>, Error> {
    let row = db
        .query_opt(q::ENDPOINT_SECRETS, &[&id, &scope.tenant()])
        .await?
        .ok_or_else(|| Error::NotFound(format!("endpoint {id} does not exist")))?;
    tracing::info!(endpoint_id = id, "event log: endpoint secrets read");
    col(&row, "secrets")
}
