/* The browser viewer's HTTP routes of the peertree-server binary: GET
 * /watch/TREE-ID (the page) and GET /peertree.js (the module), from the
 * binary's GResource; what they refuse. tests/browser runs them in Chromium. */
#include <gst/check/gstcheck.h>
#include <libsoup/soup.h>
#include <signal.h>
#include <glib/gstdio.h>

static GSubprocess *
spawn_server (const char *auth_key)
{
  g_autoptr (GError) error = NULL;
  const char *argv[] = { PEERTREE_SERVER, "--port", "0", auth_key ? "--auth-key" : NULL,
    auth_key, NULL };
  GSubprocess *proc = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_PIPE |
      G_SUBPROCESS_FLAGS_STDERR_SILENCE, &error);
  fail_unless (proc != NULL, "%s", error ? error->message : "");
  return proc;
}

/* The http:// base URL from the server's "listening on ws://…" line. */
static char *
read_base (GSubprocess *proc)
{
  g_autoptr (GDataInputStream) in = g_data_input_stream_new (g_subprocess_get_stdout_pipe (proc));
  g_autofree char *line = g_data_input_stream_read_line (in, NULL, NULL, NULL);
  fail_unless (line != NULL, "server printed nothing");
  const char *at = strstr (line, "ws://");
  fail_unless (at != NULL, "no URL in \"%s\"", line);
  return g_strdup_printf ("http%.*s", (int) strcspn (at + 2, " "), at + 2);
}

static void
stop_server (GSubprocess *proc)
{
  g_autoptr (GError) error = NULL;
  g_subprocess_send_signal (proc, SIGTERM);
  fail_unless (g_subprocess_wait (proc, NULL, &error));
  fail_unless_equals_int (g_subprocess_get_exit_status (proc), 0);
}

typedef struct {
  guint status;
  char *type;     /* Content-Type */
  char *body;
} Response;

static void
response_clear (Response *r)
{
  g_free (r->type);
  g_free (r->body);
}

static Response
fetch (const char *base, const char *method, const char *path)
{
  g_autofree char *url = g_strconcat (base, path, NULL);
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autoptr (SoupMessage) msg = soup_message_new (method, url);
  g_autoptr (GError) error = NULL;
  fail_unless (msg != NULL, "bad URL %s", url);
  g_autoptr (GBytes) body = soup_session_send_and_read (session, msg, NULL, &error);
  fail_unless (body != NULL, "%s %s: %s", method, path, error ? error->message : "");
  Response r = { soup_message_get_status (msg), NULL, NULL };
  const char *type = soup_message_headers_get_one (soup_message_get_response_headers (msg),
      "Content-Type");
  r.type = g_strdup (type ? type : "");
  r.body = g_strndup (g_bytes_get_data (body, NULL), g_bytes_get_size (body));
  return r;
}

GST_START_TEST (test_page_and_module)
{
  g_autoptr (GSubprocess) proc = spawn_server (NULL);
  g_autofree char *base = read_base (proc);

  Response page = fetch (base, "GET", "/watch/cam1");
  fail_unless_equals_int (page.status, 200);
  fail_unless (g_str_has_prefix (page.type, "text/html"), "%s", page.type);
  fail_unless (strstr (page.body, "from '../peertree.js'") != NULL, "the page imports the module");
  fail_unless (strstr (page.body, "<video") != NULL);
  response_clear (&page);

  /* every valid tree id, escaped or not, gets the same page */
  Response any = fetch (base, "GET", "/watch/a-b_c.d%3Ae%40f");
  fail_unless_equals_int (any.status, 200);
  response_clear (&any);
  Response head = fetch (base, "HEAD", "/watch/cam1");
  fail_unless_equals_int (head.status, 200);
  response_clear (&head);

  Response js = fetch (base, "GET", "/peertree.js");
  fail_unless_equals_int (js.status, 200);
  fail_unless (g_str_has_prefix (js.type, "text/javascript"), "%s", js.type);
  fail_unless (strstr (js.body, "export class PeerTreeClient") != NULL);
  fail_unless (strstr (js.body, "export class PeerTreeViewer") != NULL);
  response_clear (&js);

  stop_server (proc);
}
GST_END_TEST;

GST_START_TEST (test_refusals)
{
  g_autoptr (GSubprocess) proc = spawn_server (NULL);
  g_autofree char *base = read_base (proc);
  /* no tree id, or not a valid one: 404 */
  const char *not_found[] = { "/watch", "/watch/", "/watch/two%20words", "/watch/a/b",
    "/watch/%C3%A9t%C3%A9", "/watch/"
        "12345678901234567890123456789012345678901234567890123456789012345", /* 65 */
    "/peertree.js/x" };
  for (guint i = 0; i < G_N_ELEMENTS (not_found); i++) {
    Response r = fetch (base, "GET", not_found[i]);
    fail_unless (r.status == 404, "GET %s: %u", not_found[i], r.status);
    response_clear (&r);
  }
  const char *paths[] = { "/watch/cam1", "/peertree.js" };
  for (guint i = 0; i < G_N_ELEMENTS (paths); i++) {
    Response r = fetch (base, "DELETE", paths[i]);
    fail_unless_equals_int (r.status, 405);
    response_clear (&r);
  }
  stop_server (proc);
}
GST_END_TEST;

/* With --auth-key the page and the module stay public: the token goes in
 * the page's hello (?token=), not in the HTTP request. */
GST_START_TEST (test_public_with_auth_key)
{
  g_autofree char *dir = g_dir_make_tmp ("pt-web-XXXXXX", NULL);
  g_autofree char *key = g_build_filename (dir, "key", NULL);
  fail_unless (g_file_set_contents (key, "0123456789abcdef0123456789abcdef", -1, NULL));
  g_autoptr (GSubprocess) proc = spawn_server (key);
  g_autofree char *base = read_base (proc);
  Response page = fetch (base, "GET", "/watch/cam1");
  fail_unless_equals_int (page.status, 200);
  response_clear (&page);
  Response status = fetch (base, "GET", "/status");
  fail_unless_equals_int (status.status, 401);
  response_clear (&status);
  stop_server (proc);
  g_unlink (key);
  g_rmdir (dir);
}
GST_END_TEST;

static Suite *
web_suite (void)
{
  Suite *s = suite_create ("web");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_page_and_module);
  tcase_add_test (tc, test_refusals);
  tcase_add_test (tc, test_public_with_auth_key);
  return s;
}

GST_CHECK_MAIN (web);
