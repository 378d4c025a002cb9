package caddymodule

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/callpostback/caddy-postback/postback"
)

// `caddy postback new-key` and `caddy postback new-secret` create a
// partner's credentials, as `caddy hash-password` does for basic auth
// (docs/operations.md#keys-rotation-and-signatures).
func init() {
	postbackSubcommands = append(postbackSubcommands, newKeyCommand, newSecretCommand)
}

// keyBytes is 256 bits, for keys and signing secrets alike.
const keyBytes = 32

func newKeyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "new-key",
		Short: "Creates a webhook auth key and prints it with its key_sha256 line",
		Long: `
Creates a random 256-bit auth key for a webhook, URL-safe (base64url, 43
characters), and prints it once on the first line: give it to the partner.
The second line is what to paste into the webhook's block of the Caddyfile,
so that the config holds only the key's SHA-256:

	key_sha256 <64 hex digits>

The key cannot be recovered from that line; if it is lost, create another.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := make([]byte, keyBytes)
			if _, err := rand.Read(b); err != nil {
				return err
			}
			key := base64.RawURLEncoding.EncodeToString(b)
			digest := sha256.Sum256([]byte(key))
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s\nkey_sha256 %s\n", key, hex.EncodeToString(digest[:]))
			return err
		},
	}
}

func newSecretCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "new-secret",
		Short: "Creates a Standard Webhooks signing secret (whsec_...)",
		Long: `
Creates a random 256-bit signing secret for signed postbacks and prints it
as whsec_<base64>, the form Standard Webhooks libraries take. The partner
signs with it and the webhook verifies with it, so both hold it: give it to
the partner over a safe channel and put it in the environment Caddy reads,
for example:

	signing_secret {env.ACME_SIGNING_SECRET}`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := make([]byte, keyBytes)
			if _, err := rand.Read(b); err != nil {
				return err
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), postback.SigningSecretPrefix+base64.StdEncoding.EncodeToString(b))
			return err
		},
	}
}
