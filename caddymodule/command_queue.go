package caddymodule

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"github.com/tidwall/gjson"
)

// `caddy postback queue | dead | requeue` call the admin API of a running
// Caddy (docs/operations.md#dead-letters): a table by default, the admin
// API's JSON with --json, and a non-zero exit when the admin API refuses.
func init() {
	postbackSubcommands = append(postbackSubcommands, queueCommand, deadCommand, requeueCommand)
}

// adminFlags are the flags every queue command takes, as `caddy stop` does.
func adminFlags(cmd *cobra.Command) {
	cmd.Flags().String("address", "", "The address of the admin API, if not the default or the one in --config")
	cmd.Flags().StringP("config", "c", "", "Configuration file to read the admin address from, if --address is not used")
	cmd.Flags().StringP("adapter", "a", "", "Name of the config adapter of --config")
	cmd.Flags().Bool("json", false, "Print the admin API's JSON instead of a table")
}

// filterFlags are the dead-letter filters of dead and requeue --all.
func filterFlags(cmd *cobra.Command) {
	cmd.Flags().String("webhook", "", "Only dead letters of this webhook")
	cmd.Flags().String("account", "", "Only dead letters of this account")
	cmd.Flags().String("reason", "", "Only dead letters whose reason contains this text")
	cmd.Flags().String("since", "", "Only dead letters that died at or after this RFC 3339 time")
}

var filterNames = []string{"webhook", "account", "reason", "since"}

// adminCall makes one admin API request and returns the answer's body.
func adminCall(fl caddycmd.Flags, method, uri string, body []byte) ([]byte, error) {
	addr, err := caddycmd.DetermineAdminAPIAddress(fl.String("address"), nil, fl.String("config"), fl.String("adapter"))
	if err != nil {
		return nil, fmt.Errorf("couldn't determine the admin API address: %v", err)
	}
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, uri, nil, reader)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

func queueCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue [<call_log_id>]",
		Short: "Shows the counts of the queue, or one call's waiting updates and dead letters",
		Args:  cobra.MaximumNArgs(1),
	}
	adminFlags(cmd)
	cmd.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
		uri := "/postback/queue"
		if id := fl.Arg(0); id != "" {
			uri += "/" + url.PathEscape(id)
		}
		body, err := adminCall(fl, http.MethodGet, uri, nil)
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		if fl.Bool("json") {
			return printJSON(body)
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		if fl.Arg(0) == "" {
			gjson.ParseBytes(body).ForEach(func(k, v gjson.Result) bool {
				fmt.Fprintf(w, "%s\t%s\n", k.Str, v.String())
				return true
			})
			return caddy.ExitCodeSuccess, w.Flush()
		}
		fmt.Fprintln(w, "STATE\tENTRY\tWEBHOOK\tACCEPTED_AT\tDEAD_AT\tREASON\tEDITED\tPATCH")
		for _, state := range []string{"pending", "dead"} {
			for _, e := range gjson.GetBytes(body, state).Array() {
				edited := strings.Join(strings.Fields(strings.Trim(e.Get("edited").Raw, "[]")), "")
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", state, e.Get("id").Str, e.Get("webhook").Str, e.Get("accepted_at").Str,
					dash(e.Get("dead_at").Str), dash(e.Get("reason").Str), dash(strings.ReplaceAll(edited, `"`, "")), e.Get("patch").Raw)
			}
		}
		return caddy.ExitCodeSuccess, w.Flush()
	})
	return cmd
}

func deadCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dead [--webhook <name>] [--account <id>] [--reason <text>] [--since <time>] [--limit <n>] [--cursor <next>]",
		Short: "Lists the calls with dead letters, newest first",
		Args:  cobra.NoArgs,
	}
	adminFlags(cmd)
	filterFlags(cmd)
	cmd.Flags().Int("limit", 0, "Calls per page, at most 1000 (default 100)")
	cmd.Flags().String("cursor", "", "The next of the page before")
	cmd.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
		q := url.Values{}
		for _, name := range append(filterNames, "cursor") {
			if v := fl.String(name); v != "" {
				q.Set(name, v)
			}
		}
		if n := fl.Int("limit"); n != 0 {
			q.Set("limit", fmt.Sprint(n))
		}
		uri := "/postback/dead"
		if len(q) > 0 {
			uri += "?" + q.Encode()
		}
		body, err := adminCall(fl, http.MethodGet, uri, nil)
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		if fl.Bool("json") {
			return printJSON(body)
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "CALL_LOG_ID\tCOUNT\tOLDEST_DEAD_AT\tNEWEST_DEAD_AT\tREASONS")
		for _, c := range gjson.GetBytes(body, "calls").Array() {
			var reasons []string
			for _, r := range c.Get("reasons").Array() {
				reasons = append(reasons, r.Str)
			}
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", c.Get("call_log_id").Str, c.Get("count").Int(),
				c.Get("oldest_dead_at").Str, c.Get("newest_dead_at").Str, strings.Join(reasons, " | "))
		}
		if err := w.Flush(); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		if next := gjson.GetBytes(body, "next").Str; next != "" {
			fmt.Printf("more: add --cursor %s\n", next)
		}
		return caddy.ExitCodeSuccess, nil
	})
	return cmd
}

func requeueCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "requeue <call_log_id> [--set <field>=<json>]... [--delete <field>]... | --all [filters] [--dry-run]",
		Short: "Puts dead letters back at the head of their calls' queues, optionally edited",
		Long: `Requeues the dead letters of one call, or with --all those of every call
matching the filters. For one call, --set and --delete edit each dead letter's
PATCH first: --set revenue_paid_out=20.50 writes 20.50 as given (JSON text:
quote strings, e.g. --set 'reason="sale"'), --delete reason removes the field.
The edit is checked as a partner's postback is; a bad one requeues nothing.`,
		Args: cobra.MaximumNArgs(1),
	}
	adminFlags(cmd)
	filterFlags(cmd)
	cmd.Flags().Bool("all", false, "Requeue the dead letters of every call matching the filters")
	cmd.Flags().Bool("dry-run", false, "With --all: count what would be requeued, requeue nothing")
	cmd.Flags().StringArray("set", nil, "field=<JSON value> to set in each dead letter's PATCH")
	cmd.Flags().StringArray("delete", nil, "Field to delete from each dead letter's PATCH")
	cmd.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
		id, all := fl.Arg(0), fl.Bool("all")
		if (id == "") == !all {
			return caddy.ExitCodeFailedStartup, errors.New("name one call_log_id, or --all with filters")
		}
		if all {
			return requeueAll(fl)
		}
		edit, err := editBody(fl)
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		body, err := adminCall(fl, http.MethodPost, "/postback/dead/"+url.PathEscape(id)+"/requeue", edit)
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		if fl.Bool("json") {
			return printJSON(body)
		}
		fmt.Printf("requeued %d dead letters of call %s", gjson.GetBytes(body, "requeued").Int(), id)
		if edited := gjson.GetBytes(body, "edited").Array(); len(edited) > 0 {
			var names []string
			for _, e := range edited {
				names = append(names, e.Str)
			}
			fmt.Printf(", edited: %s", strings.Join(names, ", "))
		}
		fmt.Println()
		return caddy.ExitCodeSuccess, nil
	})
	return cmd
}

// editBody builds {"set": {...}, "delete": [...]} from --set and --delete;
// nil when there is no edit. Each --set value is JSON text, kept as typed.
func editBody(fl caddycmd.Flags) ([]byte, error) {
	sets, _ := fl.GetStringArray("set")
	deletes, _ := fl.GetStringArray("delete")
	if len(sets) == 0 && len(deletes) == 0 {
		return nil, nil
	}
	var b bytes.Buffer
	b.WriteString(`{"set":{`)
	for i, s := range sets {
		name, value, ok := strings.Cut(s, "=")
		if !ok || !gjson.Valid(value) {
			return nil, fmt.Errorf("--set %q: want field=<JSON value>, e.g. revenue_paid_out=20.50 or 'reason=\"sale\"'", s)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		key, _ := json.Marshal(name)
		b.Write(key)
		b.WriteByte(':')
		b.WriteString(value)
	}
	b.WriteString(`},"delete":`)
	if deletes == nil {
		deletes = []string{}
	}
	list, _ := json.Marshal(deletes)
	b.Write(list)
	b.WriteByte('}')
	return b.Bytes(), nil
}

// requeueAll requeues (or counts) page by page until no call matches.
func requeueAll(fl caddycmd.Flags) (int, error) {
	if sets, _ := fl.GetStringArray("set"); len(sets) > 0 {
		return caddy.ExitCodeFailedStartup, errors.New("--set and --delete edit one call's dead letters; name the call instead of --all")
	}
	if deletes, _ := fl.GetStringArray("delete"); len(deletes) > 0 {
		return caddy.ExitCodeFailedStartup, errors.New("--set and --delete edit one call's dead letters; name the call instead of --all")
	}
	req := map[string]any{}
	for _, name := range filterNames {
		if v := fl.String(name); v != "" {
			req[name] = v
		}
	}
	dryRun := fl.Bool("dry-run")
	if dryRun {
		req["dry_run"] = true
	}
	var calls, entries int64
	for {
		body, _ := json.Marshal(req)
		answer, err := adminCall(fl, http.MethodPost, "/postback/dead/requeue", body)
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		calls += gjson.GetBytes(answer, "calls").Int()
		entries += gjson.GetBytes(answer, "entries").Int()
		next := gjson.GetBytes(answer, "next").Str
		// A real requeue takes the calls out of the listing, so the same
		// request finds the next ones; a dry run moves on by the cursor.
		if next == "" || !dryRun && gjson.GetBytes(answer, "calls").Int() == 0 {
			break
		}
		if dryRun {
			req["cursor"] = next
		}
	}
	if fl.Bool("json") {
		out, _ := json.Marshal(struct {
			Calls   int64 `json:"calls"`
			Entries int64 `json:"entries"`
			DryRun  bool  `json:"dry_run,omitempty"`
		}{calls, entries, dryRun})
		return printJSON(out)
	}
	verb := "requeued"
	if dryRun {
		verb = "would requeue"
	}
	fmt.Printf("%s %d dead letters of %d calls\n", verb, entries, calls)
	return caddy.ExitCodeSuccess, nil
}

func printJSON(body []byte) (int, error) {
	var out bytes.Buffer
	if err := json.Indent(&out, bytes.TrimSpace(body), "", "  "); err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("the admin API answered something other than JSON: %v", err)
	}
	out.WriteByte('\n')
	_, err := os.Stdout.Write(out.Bytes())
	return caddy.ExitCodeSuccess, err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
