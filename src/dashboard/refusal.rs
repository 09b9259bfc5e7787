//! Why a request was not served as asked, and the one place where each reason gets its HTTP
//! status ([`Refusal::status`]). Every route answers a refusal in JSON (`{"error": …}`), and
//! a card's form without JavaScript as a page ([`super::action_routes`]); both take the status here.

use poem::Response;
use poem::http::StatusCode;
use serde_json::json;

use super::responses::json_response;
use crate::control::{ActionError, ConfigReloadError};

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("Plugin {0} not found")]
    UnknownPlugin(String),
    #[error(
        "actions are disabled: set dashboard.auth (username and password), or a dashboard.users entry with role \
         \"operator\", in the config file and restart the bot; actions then need those credentials"
    )]
    ActionsDisabled,
    /// The user (named) may read but not act.
    #[error(
        "user {0:?} is a viewer: actions and config reloads need an operator (role \"operator\" in dashboard.users, or \
         the dashboard.auth user)"
    )]
    Viewer(String),
    /// A browser says the request comes from another site (the reason names the header).
    #[error("cross-origin request refused: {0}")]
    CrossOrigin(String),
    #[error(transparent)]
    Action(#[from] ActionError),
    #[error(transparent)]
    ConfigReload(#[from] ConfigReloadError),
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::UnknownPlugin(_) | Refusal::Action(ActionError::UnknownPlugin(_)) => StatusCode::NOT_FOUND,
            Refusal::ActionsDisabled | Refusal::Viewer(_) | Refusal::CrossOrigin(_) => StatusCode::FORBIDDEN,
            Refusal::Action(ActionError::Busy { .. }) | Refusal::ConfigReload(ConfigReloadError::Busy) => {
                StatusCode::CONFLICT
            }
            Refusal::Action(ActionError::InvalidConfig(_) | ActionError::NotInConfig(_))
            | Refusal::ConfigReload(ConfigReloadError::Invalid(_)) => StatusCode::UNPROCESSABLE_ENTITY,
            Refusal::Action(ActionError::ShuttingDown) | Refusal::ConfigReload(ConfigReloadError::ShuttingDown) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// `{"error": …}` with the status; an invalid config also lists its problems, one each.
    pub fn json(&self) -> Response {
        let body = match self {
            Refusal::ConfigReload(ConfigReloadError::Invalid(problems)) => {
                json!({ "error": "the config is invalid; nothing was changed", "problems": problems.problem_lines() })
            }
            other => json!({ "error": other.to_string() }),
        };
        json_response(self.status(), &body)
    }
}
