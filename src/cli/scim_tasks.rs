//! `memberdesk scim-token`: the bearer tokens of SCIM provisioning clients
//! (identity providers), made, listed and revoked by the operator. A token
//! is printed once, on stdout alone, so it can be piped into a secret store;
//! memberdesk keeps only its digest.

use clap::{Args, Subcommand};

use super::{describe_error, open};
use crate::domain::provisioning;

#[derive(Args)]
pub(super) struct ScimTokenArgs {
    #[command(subcommand)]
    command: ScimTokenCommand,
}

#[derive(Subcommand)]
enum ScimTokenCommand {
    /// Make a token for a provisioning client and print it (once; only its
    /// digest is kept). The client acts as `scim:NAME` in the audit log,
    /// holding exactly the permissions given, never a superuser's rights.
    Create {
        /// The client's name (letters, digits, '.', '_', '-'), e.g. `okta`.
        #[arg(long)]
        name: String,
        /// Comma-separated permissions (app.codename). To provision users
        /// and groups: auth.view_user,auth.add_user,auth.change_user,
        /// auth.view_group,auth.add_group,auth.change_group,auth.delete_group
        /// (and auth.delete_user with MEMBERDESK_SCIM_DELETE=anonymize).
        #[arg(long, value_delimiter = ',')]
        permissions: Vec<String>,
    },
    /// List the tokens: NAME, STATUS (active or revoked), CREATED, PERMISSIONS.
    List,
    /// Revoke a token: every request with it is refused from now on.
    Revoke {
        /// The token's name.
        name: String,
    },
}

/// `memberdesk scim-token create|list|revoke`.
pub(super) async fn scim_token(args: ScimTokenArgs) -> Result<(), String> {
    let (pool, _) = open(false).await?;
    match args.command {
        ScimTokenCommand::Create { name, permissions } => {
            let issued = provisioning::create_token(&pool, &name, &permissions)
                .await
                .map_err(describe_error)?;
            eprintln!(
                "SCIM token '{}' created; it is shown only now:",
                issued.row.name
            );
            println!("{}", issued.secret);
        }
        ScimTokenCommand::List => {
            let tokens = provisioning::list_tokens(&pool)
                .await
                .map_err(describe_error)?;
            println!("NAME\tSTATUS\tCREATED\tPERMISSIONS");
            for t in tokens {
                let status = if t.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                let created = t.created_at.format("%Y-%m-%d %H:%M UTC");
                println!(
                    "{}\t{status}\t{created}\t{}",
                    t.name,
                    t.permissions.join(",")
                );
            }
        }
        ScimTokenCommand::Revoke { name } => {
            let row = provisioning::revoke_token(&pool, &name)
                .await
                .map_err(|_| {
                    format!(
                        "no SCIM token named '{name}' (`memberdesk scim-token list` lists them)"
                    )
                })?;
            println!("SCIM token '{}' revoked", row.name);
        }
    }
    Ok(())
}
