/* The peertree-server binary: --port 0 prints its URL, /status answers,
 * --config is read, bad flags are refused, SIGTERM stops it cleanly. */
#include <gst/check/gstcheck.h>
#include <libsoup/soup.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <glib/gstdio.h>

static GSubprocess *
spawn (GError **error, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  va_list ap;
  g_ptr_array_add (argv, (gpointer) PEERTREE_SERVER);
  va_start (ap, error);
  for (const char *a = va_arg (ap, const char *); a; a = va_arg (ap, const char *))
    g_ptr_array_add (argv, (gpointer) a);
  va_end (ap);
  g_ptr_array_add (argv, NULL);
  return g_subprocess_newv ((const char *const *) argv->pdata,
      G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE, error);
}

/* Reads the "listening on ws://…" line and returns the URL. */
static char *
read_url (GSubprocess *proc)
{
  g_autoptr (GDataInputStream) in = g_data_input_stream_new (g_subprocess_get_stdout_pipe (proc));
  g_autofree char *line = g_data_input_stream_read_line (in, NULL, NULL, NULL);
  fail_unless (line != NULL, "server printed nothing");
  const char *at = strstr (line, "ws://");
  fail_unless (at != NULL, "no URL in \"%s\"", line);
  return g_strndup (at, strcspn (at, " "));
}

static JsonNode *
get_status (const char *ws_url)
{
  g_autofree char *url = g_strdup_printf ("http%s/status", ws_url + 2);
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) body = soup_session_send_and_read (session, msg, NULL, &error);
  fail_unless (body != NULL, "%s", error ? error->message : "");
  fail_unless_equals_int (soup_message_get_status (msg), 200);
  return json_from_string (g_bytes_get_data (body, NULL), NULL);
}

GST_START_TEST (test_port_zero_status_and_sigterm)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) proc = spawn (&error, "--port", "0", "--k", "3", NULL);
  fail_unless (proc != NULL, "%s", error ? error->message : "");
  g_autofree char *url = read_url (proc);
  fail_unless (g_str_has_prefix (url, "ws://127.0.0.1:"), "%s", url);
  fail_if (g_str_has_suffix (url, ":0"));
  g_autoptr (JsonNode) status = get_status (url);
  fail_unless (status && JSON_NODE_HOLDS_OBJECT (status));
  fail_unless_equals_int (json_object_get_int_member (json_node_get_object (status), "clients"), 0);
  fail_unless (json_object_has_member (json_node_get_object (status), "trees"));
  g_subprocess_send_signal (proc, SIGTERM);
  fail_unless (g_subprocess_wait (proc, NULL, &error));
  fail_unless (g_subprocess_get_if_exited (proc));
  fail_unless_equals_int (g_subprocess_get_exit_status (proc), 0);
}
GST_END_TEST;

GST_START_TEST (test_config_file)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = NULL;
  int fd = g_file_open_tmp ("peertree-XXXXXX.conf", &path, &error);
  fail_unless (fd >= 0);
  close (fd);
  fail_unless (g_file_set_contents (path, "[server]\nport=0\nk=2\nk1=7\n", -1, &error));
  g_autoptr (GSubprocess) proc = spawn (&error, "--config", path, NULL);
  g_autoptr (GDataInputStream) in = g_data_input_stream_new (g_subprocess_get_stdout_pipe (proc));
  g_autofree char *line = g_data_input_stream_read_line (in, NULL, NULL, NULL);
  fail_unless (line && strstr (line, "k=2, k1=7"), "%s", line ? line : "(nothing)");
  g_subprocess_send_signal (proc, SIGINT);
  fail_unless (g_subprocess_wait_check (proc, NULL, &error));

  fail_unless (g_file_set_contents (path, "[server]\nk=0\n", -1, &error));
  g_autoptr (GSubprocess) bad = spawn (&error, "--config", path, NULL);
  fail_unless (g_subprocess_wait (bad, NULL, &error));
  fail_unless_equals_int (g_subprocess_get_exit_status (bad), 2);
  fail_unless (g_file_set_contents (path, "[server]\nbogus=1\n", -1, &error));
  g_autoptr (GSubprocess) bad2 = spawn (&error, "--config", path, NULL);
  fail_unless (g_subprocess_wait (bad2, NULL, &error));
  fail_unless_equals_int (g_subprocess_get_exit_status (bad2), 2);
  g_unlink (path);
}
GST_END_TEST;

GST_START_TEST (test_bad_flags)
{
  g_autoptr (GError) error = NULL;
  const char *cases[][2] = { { "--k", "0" }, { "--port", "70000" }, { "--host", "not-an-ip" } };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    /* --port 0 so that a wrongly accepted flag cannot collide on a port; the
     * port case itself goes last on the line so that it is the one in force. */
    g_autoptr (GSubprocess) proc = spawn (&error, "--port", "0", cases[i][0], cases[i][1], NULL);
    fail_unless (g_subprocess_wait (proc, NULL, &error));
    fail_if (g_subprocess_get_exit_status (proc) == 0, "%s %s accepted", cases[i][0], cases[i][1]);
  }
}
GST_END_TEST;

/* Every example of examples/ runs to completion against the real binary. */
GST_START_TEST (test_examples)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) server = spawn (&error, "--port", "0", NULL);
  g_autofree char *url = read_url (server);
  const char *examples[] = { EXAMPLES, NULL };
  for (guint i = 0; examples[i]; i++) {
    g_autoptr (GSubprocess) ex = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE |
        G_SUBPROCESS_FLAGS_STDERR_MERGE, &error, examples[i], url, NULL);
    fail_unless (ex != NULL, "%s", error ? error->message : "");
    g_autofree char *out = NULL;
    fail_unless (g_subprocess_communicate_utf8 (ex, NULL, NULL, &out, NULL, &error));
    fail_unless (g_subprocess_get_if_exited (ex) && g_subprocess_get_exit_status (ex) == 0,
        "%s failed:\n%s", examples[i], out);
  }
  g_subprocess_send_signal (server, SIGTERM);
  fail_unless (g_subprocess_wait_check (server, NULL, &error));
}
GST_END_TEST;

static Suite *
binary_suite (void)
{
  Suite *s = suite_create ("server-binary");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_port_zero_status_and_sigterm);
  tcase_add_test (tc, test_config_file);
  tcase_add_test (tc, test_bad_flags);
  tcase_add_test (tc, test_examples);
  return s;
}

GST_CHECK_MAIN (binary);
