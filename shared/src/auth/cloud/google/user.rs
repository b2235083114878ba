//! gcloud's user credentials (`"type": "authorized_user"`, what `gcloud auth
//! application-default login` writes): the OAuth 2.0 refresh-token grant at the file's
//! `token_uri`, else Google's token endpoint.

use std::path::PathBuf;

use super::adc::Fields;
use super::token::{self, AccessToken};
use crate::auth::{AuthError, Secret};

const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

#[derive(Debug)]
pub struct AuthorizedUser {
    pub file: PathBuf,
    client_id: String,
    client_secret: Secret,
    refresh_token: Secret,
    token_uri: String,
}

impl AuthorizedUser {
    pub fn from_fields(fields: &Fields) -> Result<AuthorizedUser, AuthError> {
        Ok(AuthorizedUser {
            file: fields.file.to_path_buf(),
            client_id: fields.required("client_id")?.to_string(),
            client_secret: Secret::new(fields.required("client_secret")?),
            refresh_token: Secret::new(fields.required("refresh_token")?),
            token_uri: fields.optional("token_uri")?.unwrap_or(DEFAULT_TOKEN_URI).to_string(),
        })
    }

    /// An access token from the refresh token.
    pub async fn fetch(&self, client: &reqwest::Client) -> Result<AccessToken, AuthError> {
        let request = token::form_post(
            client,
            &self.token_uri,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &self.client_id),
                ("client_secret", self.client_secret.expose()),
                ("refresh_token", self.refresh_token.expose()),
            ],
        );
        let refused =
            format!("the token service at {} refused the user credentials in {}", self.token_uri, self.file.display());
        let answer = token::send(request, &self.token_uri, &refused).await?;
        token::access_token(&answer, &self.token_uri)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_token_uri_defaults_to_googles_and_secrets_stay_hidden() {
        let file = serde_json::json!({
            "type": "authorized_user", "client_id": "c.apps.googleusercontent.com",
            "client_secret": "hunter2", "refresh_token": "1//refresh",
        });
        let user = AuthorizedUser::from_fields(&Fields { value: &file, file: Path::new("/adc.json") }).unwrap();
        assert_eq!(user.token_uri, DEFAULT_TOKEN_URI);
        let debug = format!("{user:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("1//refresh"), "{debug}");
    }
}
