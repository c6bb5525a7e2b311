//! `/api/v1/models`: the models trainers released, their cards and weights, and their
//! lineage: from a model to the models it was fine-tuned from, and to its training set,
//! the changesets and the sample keys it was trained on.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use flywheel_core::card::{Card, card_uri};
use flywheel_core::pipeline::check_pipeline_name;
use flywheel_store::{ModelRecord, TenantStore, TrainsetRecord};
use flywheel_trainset::manifest::read_chunk;
use object_store::ObjectStoreExt as _;
use serde::Serialize;

use crate::datasets::{Answer, ApiError, tenant_store};
use crate::{AppState, Caller};

/// Most ancestors a lineage walks.
const MAX_ANCESTORS: usize = 10_000;

/// A model as shown: its record and its card (absent if the card cannot be read).
#[derive(Debug, Serialize)]
struct Shown {
    #[serde(flatten)]
    record: ModelRecord,
    card: Option<Card>,
}

/// How many samples of each changeset a training set holds.
#[derive(Debug, Serialize)]
struct ChangesetCount {
    changeset: i64,
    samples: u64,
}

/// Where a model comes from.
#[derive(Debug, Serialize)]
struct Lineage {
    /// The model.
    model: ModelRecord,
    /// The models it was fine-tuned from, its parent first.
    ancestors: Vec<ModelRecord>,
    /// Its training set.
    trainset: TrainsetRecord,
    /// The changesets its samples came from, with how many from each.
    changesets: Vec<ChangesetCount>,
    /// The samples (stored ones) of the training set.
    samples: u64,
    /// Their keys, in manifest order, when asked for (`?keys=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    keys: Option<Vec<u64>>,
}

fn check_id(id: &str) -> Result<(), ApiError> {
    // ids are `{pipeline}-{trigger}`
    let ok = (1..=96).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("invalid model id {id:?}: model ids are a pipeline name, '-' and a trigger id"),
        ))
    }
}

async fn find(store: &dyn TenantStore, id: &str) -> Result<ModelRecord, ApiError> {
    check_id(id)?;
    store
        .model(id)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("model {id:?} not found")))
}

async fn read_object(state: &AppState, uri: &str) -> Result<axum::body::Bytes, ApiError> {
    let path = object_store::path::Path::from(uri);
    let got = state.backends.blobs.get(&path).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => {
            ApiError(StatusCode::NOT_FOUND, format!("object {uri} is missing"))
        }
        e => ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("reading {uri}: {e}"),
        ),
    })?;
    got.bytes().await.map_err(|e| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("reading {uri}: {e}"),
        )
    })
}

fn only_params(params: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        Some(bad) => Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown query parameter {bad:?}; the ones known are {}",
                known.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

/// `GET /api/v1/models[?pipeline=P]`: the models, oldest first.
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(params): Query<HashMap<String, String>>,
) -> Answer {
    only_params(&params, &["pipeline"])?;
    let pipeline = params.get("pipeline").map(String::as_str);
    if let Some(p) = pipeline {
        check_pipeline_name(p).map_err(|reason| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("invalid pipeline name {p:?}: {reason}"),
            )
        })?;
    }
    let store = tenant_store(&state, &caller).await?;
    Ok(axum::Json(store.models(pipeline).await?).into_response())
}

/// `GET /api/v1/models/{id}`: the model's record and card.
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Answer {
    let store = tenant_store(&state, &caller).await?;
    let record = find(store.as_ref(), &id).await?;
    let uri = card_uri(&record.uri);
    let card = match read_object(&state, &uri).await {
        Ok(bytes) => match Card::parse(&bytes, &uri) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(model = %id, "{e}");
                None
            }
        },
        Err(e) => {
            tracing::warn!(model = %id, "reading its card: {}", e.1);
            None
        }
    };
    Ok(axum::Json(Shown { record, card }).into_response())
}

/// `GET /api/v1/models/{id}/weights`: the model's weights (safetensors).
pub(crate) async fn weights(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Answer {
    let store = tenant_store(&state, &caller).await?;
    let record = find(store.as_ref(), &id).await?;
    let bytes = read_object(&state, &record.uri).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.safetensors\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /api/v1/models/{id}/lineage[?keys=true]`: the model's ancestors, training set,
/// changesets and (when asked) sample keys.
pub(crate) async fn lineage(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Answer {
    only_params(&params, &["keys"])?;
    let with_keys = match params.get("keys").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("keys {other:?} is neither true nor false"),
            ));
        }
    };
    let store = tenant_store(&state, &caller).await?;
    let model = find(store.as_ref(), &id).await?;
    let mut ancestors: Vec<ModelRecord> = Vec::new();
    let mut next = model.parent.clone();
    while let Some(parent) = next {
        if ancestors.len() >= MAX_ANCESTORS || ancestors.iter().any(|a| a.id == parent) {
            break;
        }
        match store.model(&parent).await? {
            Some(p) => {
                next = p.parent.clone();
                ancestors.push(p);
            }
            None => break,
        }
    }
    let trainset = store
        .trainset(&model.trainset_version)
        .await?
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "training set {} of model {id:?} not found",
                    model.trainset_version
                ),
            )
        })?;
    let footer = flywheel_trainset::read_footer(&state.backends.blobs, &trainset).await?;
    let what = format!("manifest {}", trainset.manifest_uri);
    let mut per_changeset: BTreeMap<i64, u64> = BTreeMap::new();
    let mut keys = with_keys.then(Vec::new);
    let path = object_store::path::Path::from(trainset.manifest_uri.as_str());
    for (n, span) in footer.shards.iter().enumerate() {
        let chunk = state
            .backends
            .blobs
            .get_range(&path, span.offset..span.offset + span.length)
            .await
            .map_err(|e| {
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("reading {what}: {e}"),
                )
            })?;
        for e in read_chunk(&footer, n, &chunk, &what)? {
            *per_changeset.entry(e.changeset).or_default() += 1;
            if let Some(k) = &mut keys {
                k.push(e.key);
            }
        }
    }
    Ok(axum::Json(Lineage {
        model,
        ancestors,
        samples: footer.samples,
        trainset,
        changesets: (per_changeset.into_iter())
            .map(|(changeset, samples)| ChangesetCount { changeset, samples })
            .collect(),
        keys,
    })
    .into_response())
}
