/* Observability (issue 15): the report request (validated, at most one a
 * second per tree), GET /metrics (parsed by a strict parser of Prometheus'
 * text format 0.0.4, and by python3-prometheus-client's when it is
 * installed; its counts follow joins, reports and errors), GET /dashboard
 * and its script (content types), and GET /dashboard/events (server-sent
 * events after a join and after a report; bounded subscribers; auth and
 * allowed-origins). An in-process server on 127.0.0.1. */
#include "pt-test-util.h"
#include "pt-server-private.h"

#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

/* ------------------------------------------------------------------------ */
/* HTTP                                                                     */

typedef struct {
  guint status;
  char *content_type;
  char *body;
} Response;

static void
response_free (Response *r)
{
  g_free (r->content_type);
  g_free (r->body);
  g_free (r);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Response, response_free)

/* GET @path of @server, with @authorization and @origin headers unless NULL. */
static Response *
http_get_full (PtServer *server, const char *path, const char *authorization,
    const char *origin)
{
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autofree char *url = g_strdup_printf ("http://127.0.0.1:%u%s", pt_server_get_port (server),
      path);
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr (GAsyncResult) res = NULL;
  g_autoptr (GError) error = NULL;
  if (authorization)
    soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization",
        authorization);
  if (origin)
    soup_message_headers_replace (soup_message_get_request_headers (msg), "Origin", origin);
  soup_session_send_and_read_async (session, msg, G_PRIORITY_DEFAULT, NULL, pt_test_store_result,
      &res);
  g_autoptr (GBytes) body = soup_session_send_and_read_finish (session, pt_test_await (&res),
      &error);
  fail_unless (body != NULL, "GET %s: %s", path, error ? error->message : "");
  Response *r = g_new0 (Response, 1);
  r->status = soup_message_get_status (msg);
  r->content_type = g_strdup (soup_message_headers_get_one (
      soup_message_get_response_headers (msg), "Content-Type"));
  r->body = g_strndup (g_bytes_get_data (body, NULL), g_bytes_get_size (body));
  return r;
}

static Response *
http_get (PtServer *server, const char *path)
{
  return http_get_full (server, path, NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* A strict parser of Prometheus' text format 0.0.4                         */

static gboolean
metric_name_ok (const char *s, gsize n)
{
  if (n == 0 || !(g_ascii_isalpha (s[0]) || s[0] == '_' || s[0] == ':'))
    return FALSE;
  for (gsize i = 1; i < n; i++)
    if (!(g_ascii_isalnum (s[i]) || s[i] == '_' || s[i] == ':'))
      return FALSE;
  return TRUE;
}

/* Parses @text into series ("name{label=\"value\",…}" as written, with
 * escapes undone) -> value; fails the test at the first line that breaks
 * the format: HELP and TYPE once per family, TYPE before its samples, known
 * types, samples of the family their TYPE announced, label names and
 * escapes, numeric values, counters named _total, no duplicate series, a
 * final newline. */
static GHashTable *
parse_metrics (const char *text)
{
  GHashTable *series = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr (GHashTable) typed = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr (GHashTable) helped = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autofree char *family = NULL;
  fail_unless (g_str_has_suffix (text, "\n"), "no final newline");
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i] && lines[i + 1]; i++) {
    const char *l = lines[i];
    fail_if (*l == '\0', "empty line %u", i + 1);
    if (g_str_has_prefix (l, "# HELP ") || g_str_has_prefix (l, "# TYPE ")) {
      const char *name = l + 7;
      const char *sp = strchr (name, ' ');
      fail_unless (sp != NULL && sp[1] != '\0', "line %u: %s", i + 1, l);
      g_autofree char *n = g_strndup (name, sp - name);
      fail_unless (metric_name_ok (n, strlen (n)), "line %u: bad name %s", i + 1, n);
      if (l[2] == 'H') {
        fail_if (g_hash_table_contains (helped, n), "HELP twice for %s", n);
        g_hash_table_add (helped, g_strdup (n));
      } else {
        const char *type = sp + 1;
        fail_unless (g_strv_contains ((const char *const[]) { "counter", "gauge", "histogram",
            "summary", "untyped", NULL }, type), "line %u: type %s", i + 1, type);
        fail_if (g_hash_table_contains (typed, n), "TYPE twice for %s", n);
        if (strcmp (type, "counter") == 0)
          fail_unless (g_str_has_suffix (n, "_total"), "counter %s without _total", n);
        g_hash_table_insert (typed, g_strdup (n), g_strdup (type));
        g_free (family);
        family = g_strdup (n);
      }
      continue;
    }
    fail_if (*l == '#', "line %u: unknown comment %s", i + 1, l);
    /* a sample: name[{labels}] value */
    gsize n = 0;
    while (l[n] && l[n] != '{' && l[n] != ' ')
      n++;
    fail_unless (metric_name_ok (l, n), "line %u: bad sample name: %s", i + 1, l);
    g_autofree char *name = g_strndup (l, n);
    fail_unless (family && strcmp (name, family) == 0, "line %u: %s outside its family (%s)",
        i + 1, name, family ? family : "none");
    g_autoptr (GString) key = g_string_new (name);
    const char *p = l + n;
    if (*p == '{') {
      p++;
      g_string_append_c (key, '{');
      while (*p != '}') {
        gsize ln = 0;
        while (g_ascii_isalnum (p[ln]) || p[ln] == '_')
          ln++;
        fail_unless (ln > 0 && !g_ascii_isdigit (p[0]) && p[ln] == '=' && p[ln + 1] == '"',
            "line %u: bad label: %s", i + 1, l);
        g_string_append_len (key, p, ln + 2);
        p += ln + 2;
        while (*p != '"') {
          fail_unless (*p != '\0', "line %u: unterminated label value", i + 1);
          if (*p == '\\') {
            p++;
            fail_unless (*p == '\\' || *p == '"' || *p == 'n', "line %u: bad escape", i + 1);
            g_string_append_c (key, *p == 'n' ? '\n' : *p);
          } else {
            g_string_append_c (key, *p);
          }
          p++;
        }
        g_string_append_c (key, '"');
        p++;
        if (*p == ',') {
          g_string_append_c (key, ',');
          p++;
        } else {
          fail_unless (*p == '}', "line %u: bad label list", i + 1);
        }
      }
      g_string_append_c (key, '}');
      p++;
    }
    fail_unless (*p == ' ', "line %u: no value: %s", i + 1, l);
    p++;
    char *end = NULL;
    double v = g_ascii_strtod (p, &end);
    fail_unless (end != p && *end == '\0', "line %u: bad value: %s", i + 1, l);
    fail_if (g_hash_table_contains (series, key->str), "series %s twice", key->str);
    g_hash_table_insert (series, g_strdup (key->str), g_memdup2 (&v, sizeof v));
  }
  /* every family has its HELP */
  GHashTableIter it;
  gpointer k;
  g_hash_table_iter_init (&it, typed);
  while (g_hash_table_iter_next (&it, &k, NULL))
    fail_unless (g_hash_table_contains (helped, k), "no HELP for %s", (char *) k);
  return series;
}

static double
series (GHashTable *s, const char *key)
{
  double *v = g_hash_table_lookup (s, key);
  fail_unless (v != NULL, "no series %s", key);
  return *v;
}

static GHashTable *
scrape (PtServer *server)
{
  g_autoptr (Response) r = http_get (server, "/metrics");
  fail_unless_equals_int (r->status, 200);
  fail_unless_equals_string (r->content_type, "text/plain; version=0.0.4; charset=utf-8");
  return parse_metrics (r->body);
}

/* Feeds @text to python3-prometheus-client's parser, when it is installed. */
static void
python_parse (const char *text)
{
  static const char script[] =
      "import sys\n"
      "from prometheus_client.parser import text_string_to_metric_families\n"
      "n = sum(len(f.samples) for f in text_string_to_metric_families(sys.stdin.read()))\n"
      "print(n)\n";
  const char *python = "/usr/bin/python3";
  if (!g_file_test (python, G_FILE_TEST_IS_EXECUTABLE) ||
      !g_spawn_command_line_sync ("/usr/bin/python3 -c 'import prometheus_client'", NULL, NULL,
          NULL, NULL)) {
    g_printerr ("SKIP (python part): /usr/bin/python3 with prometheus_client is not installed "
        "(scripts/deps installs python3-prometheus-client); the C parser checked /metrics\n");
    return;
  }
  int status = 0;
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) p = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE |
      G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE, &error, python, "-c",
      script, NULL);
  fail_unless (p != NULL, "%s", error ? error->message : "");
  g_autofree char *out = NULL, *err = NULL;
  fail_unless (g_subprocess_communicate_utf8 (p, text, NULL, &out, &err, &error), "%s",
      error ? error->message : "");
  status = g_subprocess_get_exit_status (p);
  fail_unless (g_subprocess_get_if_exited (p) && status == 0,
      "prometheus_client refused /metrics: %s", err);
  fail_unless (atoi (out) > 20, "prometheus_client read only %s samples", out);
}

GST_START_TEST (test_metrics_parse_and_count)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (GError) error = NULL;
  g_autoptr (GHashTable) before = scrape (server);
  fail_unless_equals_int (series (before, "peertree_trees"), 0);
  fail_unless_equals_int (series (before, "peertree_joins_total"), 0);
  fail_unless_equals_int (series (before, "peertree_errors_total{code=\"tree-not-found\"}"), 0);
  fail_unless_equals_int (series (before,
      "peertree_rejected_connections_total{reason=\"max-clients\"}"), 0);

  PtTestPeer *src = pt_test_peer_new (server, "src");
  g_autofree char *tree = pt_test_create (src->client, "cam1", 0, 0, &error);
  fail_unless (tree != NULL);
  PtTestPeer *v = pt_test_peer_new (server, "v1");
  fail_unless (pt_test_join (v->client, "cam1", NULL, NULL, &error));
  /* an error reply */
  fail_if (pt_test_join (v->client, "nope", NULL, NULL, &error));
  g_clear_error (&error);
  /* a relayed message */
  g_autoptr (JsonObject) params = json_object_new ();
  json_object_set_string_member (params, "to", "src");
  json_object_set_string_member (params, "event", "hi");
  g_autoptr (JsonObject) res = pt_test_request (v->client, "emit", params, &error);
  fail_unless (res != NULL);
  WAIT_UNTIL (src->children->len == 1);

  g_autoptr (Response) r = http_get (server, "/metrics");
  g_autoptr (GHashTable) after = parse_metrics (r->body);
  python_parse (r->body);
  fail_unless_equals_int (series (after, "peertree_clients"), 2);
  fail_unless_equals_int (series (after, "peertree_trees"), 1);
  fail_unless_equals_int (series (after, "peertree_tree_members{tree=\"cam1\"}"), 2);
  fail_unless_equals_int (series (after, "peertree_trees_created_total"), 1);
  fail_unless_equals_int (series (after, "peertree_joins_total"), 1);
  fail_unless_equals_int (series (after, "peertree_errors_total{code=\"tree-not-found\"}"), 1);
  fail_unless_equals_int (series (after, "peertree_relayed_messages_total"), 1);
  fail_unless (series (after, "peertree_relayed_bytes_total") > 10);
  fail_unless (series (after, "peertree_received_messages_total") >= 5);

  /* the relay leaves: its child... here, the viewer leaves; then the source
   * disconnects (a source loss, the grace period) */
  pt_test_peer_free (v);
  pt_test_peer_free (src);
  WAIT_UNTIL (pt_server_get_n_clients (server) == 0);
  g_autoptr (GHashTable) last = scrape (server);
  fail_unless_equals_int (series (last, "peertree_clients"), 0);
  fail_unless_equals_int (series (last, "peertree_source_losses_total"), 1);
  fail_unless_equals_int (series (last, "peertree_tree_members{tree=\"cam1\"}"), 1);
}
GST_END_TEST;

/* A relay's disconnection re-parents its child: counted by reason. */
GST_START_TEST (test_metrics_reparenting)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (GError) error = NULL;
  PtTestPeer *src = pt_test_peer_new (server, "src");
  g_autofree char *tree = pt_test_create (src->client, "t", 1, 1, &error);
  PtTestPeer *a = pt_test_peer_new (server, "a"), *b = pt_test_peer_new (server, "b");
  fail_unless (pt_test_join (a->client, "t", NULL, NULL, &error));
  fail_unless (pt_test_join (b->client, "t", NULL, NULL, &error));
  fail_unless_equals_string (b->parent, "a");
  pt_test_peer_free (a);
  WAIT_UNTIL (b->upstream_changes == 2);
  g_autoptr (GHashTable) m = scrape (server);
  fail_unless_equals_int (series (m, "peertree_reparentings_total{reason=\"parent-left\"}"), 1);
  fail_unless_equals_int (series (m, "peertree_joins_total"), 2);
  pt_test_peer_free (b);
  pt_test_peer_free (src);
}
GST_END_TEST;

GST_START_TEST (test_metrics_label_escaping)
{
  g_autoptr (GString) s = g_string_new (NULL);
  pt_metrics_escape_label (s, "a\\b\"c\nd");
  fail_unless_equals_string (s->str, "a\\\\b\\\"c\\nd");
  g_autoptr (GHashTable) parsed = parse_metrics ("# HELP x_total X.\n# TYPE x_total counter\n"
      "x_total{l=\"a\\\\b\\\"c\\nd\"} 3\n");
  fail_unless_equals_int (series (parsed, "x_total{l=\"a\\b\"c\nd\"}"), 3);
}
GST_END_TEST;

/* ------------------------------------------------------------------------ */
/* Reports                                                                  */

static gboolean
report_raw (PeerTreeClient *c, const char *json, GError **error)
{
  g_autoptr (JsonNode) node = json_from_string (json, NULL);
  fail_unless (node != NULL, "%s", json);
  g_autoptr (JsonObject) res = pt_test_request (c, "report", json_node_get_object (node), error);
  return res != NULL;
}

GST_START_TEST (test_report_validation)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (GError) error = NULL;
  PtTestPeer *src = pt_test_peer_new (server, "src");
  g_autofree char *tree = pt_test_create (src->client, "cam1", 0, 0, &error);
  PtTestPeer *v = pt_test_peer_new (server, "v1");
  PtTestPeer *other = pt_test_peer_new (server, "other");
  fail_unless (pt_test_join (v->client, "cam1", NULL, NULL, &error));

  const char *bad[] = {
    "{\"treeId\": \"cam1\", \"bitrateKbps\": \"fast\"}",
    "{\"treeId\": \"cam1\", \"bitrateKbps\": -1}",
    "{\"treeId\": \"cam1\", \"bitrateKbps\": 1.5}",
    "{\"treeId\": \"cam1\", \"bitrateKbps\": 10000001}",
    "{\"treeId\": \"cam1\", \"lossPercent\": 100.5}",
    "{\"treeId\": \"cam1\", \"lossPercent\": -0.1}",
    "{\"treeId\": \"cam1\", \"lossPercent\": true}",
    "{\"treeId\": \"cam1\", \"rttMs\": 60001}",
    "{\"treeId\": \"cam1\", \"framesPerSecond\": 1000.5}",
    "{\"treeId\": \"cam1\", \"framesPerSecond\": [30]}",
    "{\"treeId\": \"cam1\", \"childCount\": 257}",
    "{\"treeId\": 7}",
    "{}",
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    fail_if (report_raw (v->client, bad[i], &error), "accepted: %s", bad[i]);
    fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_BAD_REQUEST) ||
        g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_INVALID_ID),
        "%s: %s", bad[i], error->message);
    g_clear_error (&error);
  }
  /* a refused report is not kept, and does not count against the rate */
  fail_unless (report_raw (v->client, "{\"treeId\": \"cam1\", \"childCount\": 0, "
      "\"bitrateKbps\": 2450, \"lossPercent\": 0.4, \"rttMs\": 12, \"framesPerSecond\": 30}",
      &error), "%s", error ? error->message : "");
  /* at once again: too frequent */
  PeerTreeLinkReport lr = PEER_TREE_LINK_REPORT_INIT;
  lr.bitrate_kbps = 100;
  g_autoptr (GAsyncResult) res = NULL;
  peer_tree_client_report_async (v->client, "cam1", &lr, NULL, pt_test_store_result, &res);
  fail_if (peer_tree_client_report_finish (v->client, pt_test_await (&res), &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_LIMIT), "%s",
      error->message);
  g_clear_error (&error);
  /* another member's own report is on its own clock */
  g_clear_object (&res);
  lr.loss_percent = 250;      /* clamped to 100 by the library */
  peer_tree_client_report_async (src->client, "cam1", &lr, NULL, pt_test_store_result, &res);
  fail_unless (peer_tree_client_report_finish (src->client, pt_test_await (&res), &error), "%s",
      error ? error->message : "");
  /* not a member; no such tree */
  fail_if (report_raw (other->client, "{\"treeId\": \"cam1\"}", &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_NOT_MEMBER), "%s",
      error->message);
  g_clear_error (&error);
  fail_if (report_raw (other->client, "{\"treeId\": \"zz\"}", &error));
  fail_unless (g_error_matches (error, PEER_TREE_ERROR, PEER_TREE_ERROR_TREE_NOT_FOUND));
  g_clear_error (&error);

  /* kept, as reported */
  TreeEntry *t = g_hash_table_lookup (server->trees, "cam1");
  PtLinkStats *st = g_hash_table_lookup (t->link_stats, "v1");
  fail_unless (st != NULL);
  fail_unless_equals_int (st->report.bitrate_kbps, 2450);
  fail_unless_equals_int (st->report.rtt_ms, 12);
  fail_unless (st->report.loss_percent == 0.4);
  st = g_hash_table_lookup (t->link_stats, "src");
  fail_unless (st->report.loss_percent == 100 && st->report.child_count == -1);

  g_autoptr (GHashTable) m = scrape (server);
  fail_unless_equals_int (series (m, "peertree_reports_total"), 2);
  fail_unless_equals_int (series (m, "peertree_errors_total{code=\"limit\"}"), 1);
  fail_unless_equals_int (series (m, "peertree_errors_total{code=\"bad-request\"}"), 13);

  /* a member that leaves takes its report along */
  pt_test_peer_free (v);
  WAIT_UNTIL (!g_hash_table_contains (t->link_stats, "v1"));
  pt_test_peer_free (other);
  pt_test_peer_free (src);
}
GST_END_TEST;

/* ------------------------------------------------------------------------ */
/* Dashboard                                                                */

GST_START_TEST (test_dashboard_files)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (Response) page = http_get (server, "/dashboard");
  fail_unless_equals_int (page->status, 200);
  fail_unless_equals_string (page->content_type, "text/html; charset=utf-8");
  fail_unless (strstr (page->body, "<script src=\"/dashboard/dashboard.js\">") != NULL);
  g_autoptr (Response) js = http_get (server, "/dashboard/dashboard.js");
  fail_unless_equals_int (js->status, 200);
  fail_unless_equals_string (js->content_type, "text/javascript; charset=utf-8");
  fail_unless (strstr (js->body, "/dashboard/events") != NULL);
  g_autoptr (Response) none = http_get (server, "/dashboard/nope.js");
  fail_unless_equals_int (none->status, 404);
  g_autoptr (Response) slash = http_get (server, "/dashboard/");
  fail_unless_equals_int (slash->status, 200);
}
GST_END_TEST;

/* A raw subscriber of /dashboard/events: what it has read so far. */
typedef struct {
  GSocketConnection *conn;
  GString *buf;
} Sse;

static Sse *
sse_open_full (PtServer *server, const char *extra_headers)
{
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GError) error = NULL;
  Sse *s = g_new0 (Sse, 1);
  g_autofree char *host = g_strdup_printf ("127.0.0.1:%u", pt_server_get_port (server));
  g_autoptr (GAsyncResult) res = NULL;
  g_socket_client_connect_to_host_async (client, host, 0, NULL, pt_test_store_result, &res);
  s->conn = g_socket_client_connect_to_host_finish (client, pt_test_await (&res), &error);
  fail_unless (s->conn != NULL, "%s", error ? error->message : "");
  g_autofree char *req = g_strdup_printf ("GET /dashboard/events HTTP/1.1\r\nHost: %s\r\n"
      "Accept: text/event-stream\r\n%s\r\n", host, extra_headers ? extra_headers : "");
  GOutputStream *out = g_io_stream_get_output_stream (G_IO_STREAM (s->conn));
  fail_unless (g_output_stream_write_all (out, req, strlen (req), NULL, NULL, &error));
  s->buf = g_string_new (NULL);
  return s;
}

static Sse *
sse_open (PtServer *server)
{
  return sse_open_full (server, NULL);
}

/* Reads what is there; FALSE at the end of the stream. */
static gboolean
sse_pump (Sse *s)
{
  GPollableInputStream *in = G_POLLABLE_INPUT_STREAM (g_io_stream_get_input_stream (
      G_IO_STREAM (s->conn)));
  char b[4096];
  for (;;) {
    g_autoptr (GError) error = NULL;
    gssize n = g_pollable_input_stream_read_nonblocking (in, b, sizeof b, NULL, &error);
    if (n > 0) {
      g_string_append_len (s->buf, b, n);
      continue;
    }
    return n < 0 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK);
  }
}

static gboolean
sse_has (Sse *s, const char *text)
{
  sse_pump (s);
  return strstr (s->buf->str, text) != NULL;
}

static void
sse_free (Sse *s)
{
  g_io_stream_close (G_IO_STREAM (s->conn), NULL, NULL);
  g_object_unref (s->conn);
  g_string_free (s->buf, TRUE);
  g_free (s);
}

GST_START_TEST (test_dashboard_events)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autoptr (GError) error = NULL;
  PtTestPeer *src = pt_test_peer_new (server, "src");
  g_autofree char *tree = pt_test_create (src->client, "cam1", 0, 0, &error);

  Sse *s = sse_open (server);
  WAIT_UNTIL (sse_has (s, "event: tree\ndata: {\"id\":\"cam1\""));
  fail_unless (g_str_has_prefix (s->buf->str, "HTTP/1.1 200 OK\r\n"));
  fail_unless (strstr (s->buf->str, "\r\nContent-Type: text/event-stream; charset=utf-8\r\n"));
  fail_unless (strstr (s->buf->str, "event: server\ndata: {\"clients\":1,\"trees\":1}\n\n"));
  WAIT_UNTIL (pt_dashboard_n_streams (server) == 1);
  /* the stream is not an HTTP connection any more: http-timeout does not end it */
  fail_unless_equals_int (g_hash_table_size (server->http_conns), 0);

  /* a join: the tree again, with the new member under its parent */
  g_string_truncate (s->buf, 0);
  PtTestPeer *v = pt_test_peer_new (server, "v1");
  fail_unless (pt_test_join (v->client, "cam1", NULL, NULL, &error));
  WAIT_UNTIL (sse_has (s, "{\"id\":\"v1\",\"parent\":\"src\",\"depth\":1}"));
  fail_unless (strstr (s->buf->str, "event: tree\ndata: {\"id\":\"cam1\""));

  /* a report: its figures */
  g_string_truncate (s->buf, 0);
  PeerTreeLinkReport lr = PEER_TREE_LINK_REPORT_INIT;
  lr.bitrate_kbps = 2450;
  lr.rtt_ms = 12;
  lr.child_count = 0;
  peer_tree_client_send_report (v->client, "cam1", &lr);
  WAIT_UNTIL (sse_has (s, "event: reports\ndata: {\"tree\":\"cam1\",\"reports\":{\"v1\":"
      "{\"childCount\":0,\"bitrateKbps\":2450,\"rttMs\":12,"));

  /* a second subscriber's snapshot carries the report */
  Sse *s2 = sse_open (server);
  WAIT_UNTIL (sse_has (s2, "\"report\":{\"childCount\":0,\"bitrateKbps\":2450"));

  /* the tree closes */
  g_string_truncate (s->buf, 0);
  g_autoptr (JsonObject) params = json_object_new ();
  json_object_set_string_member (params, "treeId", "cam1");
  g_autoptr (JsonObject) res = pt_test_request (src->client, "leave", params, &error);
  fail_unless (res != NULL);
  WAIT_UNTIL (sse_has (s, "event: tree-closed\ndata: {\"id\":\"cam1\"}\n\n"));

  /* a subscriber that goes is forgotten */
  sse_free (s2);
  WAIT_UNTIL (pt_dashboard_n_streams (server) == 1);
  g_autoptr (GHashTable) m = scrape (server);
  fail_unless_equals_int (series (m, "peertree_event_streams"), 1);
  sse_free (s);
  WAIT_UNTIL (pt_dashboard_n_streams (server) == 0);
  pt_test_peer_free (v);
  pt_test_peer_free (src);
}
GST_END_TEST;

/* max-event-streams bounds the subscribers; allowed-origins holds for them. */
GST_START_TEST (test_dashboard_events_bounds)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PtServer) server = g_object_new (PT_TYPE_SERVER, "host", "127.0.0.1", "port", 0,
      "max-event-streams", 1, "allowed-origins", "http://good.example", NULL);
  fail_unless (pt_server_listen (server, &error));
  Sse *s = sse_open (server);
  WAIT_UNTIL (sse_has (s, "event: server"));
  g_autoptr (Response) full = http_get (server, "/dashboard/events");
  fail_unless_equals_int (full->status, 503);
  sse_free (s);
  WAIT_UNTIL (pt_dashboard_n_streams (server) == 0);
  g_autoptr (Response) evil = http_get_full (server, "/dashboard/events", NULL,
      "http://evil.example");
  fail_unless_equals_int (evil->status, 403);
  Sse *good = sse_open_full (server, "Origin: http://good.example\r\n");
  WAIT_UNTIL (sse_has (good, "event: server"));
  sse_free (good);
  g_autoptr (GHashTable) m = scrape (server);
  fail_unless_equals_int (series (m,
      "peertree_rejected_connections_total{reason=\"max-event-streams\"}"), 1);
  fail_unless_equals_int (series (m, "peertree_rejected_connections_total{reason=\"origin\"}"),
      1);
}
GST_END_TEST;

/* With --auth-key, /metrics and the events need an admin token; the page
 * and its script do not (they hold no data). */
GST_START_TEST (test_auth)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *key_path = NULL;
  int fd = g_file_open_tmp ("peertree-key-XXXXXX", &key_path, &error);
  fail_unless (fd >= 0);
  close (fd);
  fail_unless (g_file_set_contents (key_path, "0123456789abcdef0123456789abcdef-test-key\n", -1,
      &error));
  g_autoptr (GBytes) key = pt_auth_load_key (key_path, &error);
  g_autoptr (PtServer) server = g_object_new (PT_TYPE_SERVER, "host", "127.0.0.1", "port", 0,
      "auth-key", key_path, NULL);
  fail_unless (pt_server_listen (server, &error));
  g_autofree char *admin = NULL, *viewer = NULL;
  for (int i = 0; i < 2; i++) {
    g_autoptr (JsonObject) claims = json_object_new ();
    json_object_set_string_member (claims, "sub", i ? "ops" : "v");
    json_object_set_int_member (claims, "exp", g_get_real_time () / G_USEC_PER_SEC + 600);
    if (i)
      json_object_set_boolean_member (claims, "admin", TRUE);
    *(i ? &admin : &viewer) = pt_auth_sign (key, claims);
  }
  g_autofree char *admin_h = g_strconcat ("Bearer ", admin, NULL);
  g_autofree char *viewer_h = g_strconcat ("Bearer ", viewer, NULL);
  const char *paths[] = { "/metrics", "/dashboard/events" };
  for (guint i = 0; i < G_N_ELEMENTS (paths); i++) {
    g_autoptr (Response) none = http_get (server, paths[i]);
    fail_unless_equals_int (none->status, 401);
    g_autoptr (Response) weak = http_get_full (server, paths[i], viewer_h, NULL);
    fail_unless_equals_int (weak->status, 403);
  }
  g_autoptr (Response) m = http_get_full (server, "/metrics", admin_h, NULL);
  fail_unless_equals_int (m->status, 200);
  g_autofree char *hdr = g_strdup_printf ("Authorization: %s\r\n", admin_h);
  Sse *s = sse_open_full (server, hdr);
  WAIT_UNTIL (sse_has (s, "event: server"));
  sse_free (s);
  g_autoptr (Response) page = http_get (server, "/dashboard");
  fail_unless_equals_int (page->status, 200);
  g_autoptr (Response) js = http_get (server, "/dashboard/dashboard.js");
  fail_unless_equals_int (js->status, 200);
  g_unlink (key_path);
}
GST_END_TEST;

static Suite *
observability_suite (void)
{
  Suite *s = suite_create ("observability");
  TCase *tc = tcase_create ("observability");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_metrics_parse_and_count);
  tcase_add_test (tc, test_metrics_reparenting);
  tcase_add_test (tc, test_metrics_label_escaping);
  tcase_add_test (tc, test_report_validation);
  tcase_add_test (tc, test_dashboard_files);
  tcase_add_test (tc, test_dashboard_events);
  tcase_add_test (tc, test_dashboard_events_bounds);
  tcase_add_test (tc, test_auth);
  return s;
}

GST_CHECK_MAIN (observability);
