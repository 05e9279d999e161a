//! The browser origins some client registered (`allowed_origins`), for CORS. A preflight names no
//! client, so the question there is "does any client allow this origin?"; the token and revocation
//! endpoints then check the authenticated client's own list. The set is cached per node and
//! reloaded with the signing keys (every 10 s) and at once when this node registers or deletes a
//! client. It decides CORS only, never whether a token is valid.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use super::{Result, ServiceError};
use crate::store::{self, Pool};

#[derive(Default)]
pub struct OriginCache {
    set: RwLock<Arc<HashSet<String>>>,
}

impl OriginCache {
    pub fn allows(&self, origin: &str) -> bool {
        let set = match self.set.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        set.contains(origin)
    }

    pub async fn reload(&self, pool: &Pool) -> Result<()> {
        let rows = pool
            .run(|conn| store::clients::list(conn).map_err(ServiceError::from))
            .await?;
        let set: HashSet<String> = rows
            .iter()
            .flat_map(|c| {
                c.allowed_origins
                    .split(' ')
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned)
            })
            .collect();
        match self.set.write() {
            Ok(mut guard) => *guard = Arc::new(set),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(set),
        }
        Ok(())
    }
}
