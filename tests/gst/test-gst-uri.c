/* The peertree:// URI handler of peertreesink and peertreesrc (gst/pt-uri.c):
 * URI → properties, properties → URI, the round trip, and the URIs refused.
 * No server, no media.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <gst/check/gstcheck.h>
#include <string.h>

static GstElement *
from_uri (GstURIType type, const gchar *uri)
{
  g_autoptr (GError) error = NULL;
  GstElement *e = gst_element_make_from_uri (type, uri, NULL, &error);

  fail_unless (e != NULL, "%s: %s", uri, error ? error->message : "no element");
  return e;
}

/* @uri is refused with a GST_URI_ERROR @code and changes nothing. */
static void
check_refused (GstElement *e, const gchar *uri, GstURIError code)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *before = gst_uri_handler_get_uri (GST_URI_HANDLER (e));
  g_autofree gchar *after = NULL;
  g_autofree gchar *server = NULL;

  fail_if (gst_uri_handler_set_uri (GST_URI_HANDLER (e), uri, &error), "%s accepted", uri);
  fail_unless (g_error_matches (error, GST_URI_ERROR, code), "%s: %s", uri,
      error ? error->message : "no error");
  after = gst_uri_handler_get_uri (GST_URI_HANDLER (e));
  fail_unless_equals_string (before, after);
  g_object_get (e, "server", &server, NULL);
  fail_unless_equals_string (server, "ws://192.0.2.1:9000");
}

GST_START_TEST (test_src_uri)
{
  GstElement *src = from_uri (GST_URI_SRC,
      "peertree://127.0.0.1:8645/cam-1?client-id=v7&latency=50&stun-server=stun://192.0.2.9:3478");
  g_autofree gchar *server = NULL, *tree = NULL, *client = NULL, *stun = NULL;
  g_autofree gchar *uri = NULL;
  guint latency;

  fail_unless_equals_string (G_OBJECT_TYPE_NAME (src), "GstPeerTreeSrc");
  fail_unless_equals_int (gst_uri_handler_get_uri_type (GST_URI_HANDLER (src)), GST_URI_SRC);
  g_object_get (src, "server", &server, "tree-id", &tree, "client-id", &client,
      "latency", &latency, "stun-server", &stun, NULL);
  fail_unless_equals_string (server, "ws://127.0.0.1:8645");
  fail_unless_equals_string (tree, "cam-1");
  fail_unless_equals_string (client, "v7");
  fail_unless_equals_int (latency, 50);
  fail_unless_equals_string (stun, "stun://192.0.2.9:3478");

  /* what it gives back: server, tree and the settings not at their default */
  uri = gst_uri_handler_get_uri (GST_URI_HANDLER (src));
  fail_unless_equals_string (uri, "peertree://127.0.0.1:8645/cam-1?client-id=v7&latency=50");

  /* no port: the server's URL has none either */
  fail_unless (gst_uri_handler_set_uri (GST_URI_HANDLER (src), "peertree://example.org/t",
          NULL));
  g_clear_pointer (&server, g_free);
  g_object_get (src, "server", &server, NULL);
  fail_unless_equals_string (server, "ws://example.org");

  /* a query key that is no setting of the element is ignored */
  fail_unless (gst_uri_handler_set_uri (GST_URI_HANDLER (src),
          "peertree://192.0.2.1:9000/t?no-such-thing=1", NULL));
  g_clear_pointer (&uri, g_free);
  uri = gst_uri_handler_get_uri (GST_URI_HANDLER (src));
  fail_unless_equals_string (uri, "peertree://192.0.2.1:9000/t?client-id=v7&latency=50");

  /* no tree, no URI */
  g_object_set (src, "tree-id", NULL, NULL);
  g_clear_pointer (&uri, g_free);
  uri = gst_uri_handler_get_uri (GST_URI_HANDLER (src));
  fail_unless (uri == NULL);
  gst_object_unref (src);
}

GST_END_TEST;

/* token= sets the token property (a credential): it is never printed back */
GST_START_TEST (test_token_uri)
{
  const GstURIType types[] = { GST_URI_SRC, GST_URI_SINK };

  for (guint i = 0; i < G_N_ELEMENTS (types); i++) {
    GstElement *e = from_uri (types[i],
        "peertree://127.0.0.1:8645/cam-1?token=aaa.bbb.ccc&client-id=v7");
    g_autofree gchar *token = NULL, *uri = NULL;

    g_object_get (e, "token", &token, NULL);
    fail_unless_equals_string (token, "aaa.bbb.ccc");
    uri = gst_uri_handler_get_uri (GST_URI_HANDLER (e));
    fail_unless (uri != NULL);
    fail_unless (strstr (uri, "token") == NULL && strstr (uri, "aaa.bbb") == NULL, "%s", uri);
    fail_unless (strstr (uri, "client-id=v7") != NULL, "%s", uri);
    gst_object_unref (e);
  }
}

GST_END_TEST;

GST_START_TEST (test_sink_uri)
{
  GstElement *sink = from_uri (GST_URI_SINK,
      "peertree://127.0.0.1:8645/show?k=3&k1=5&video-codec=h264&client-id=src-1");
  g_autofree gchar *server = NULL, *tree = NULL, *client = NULL;
  g_autofree gchar *uri = NULL;
  guint k, k1;
  gint codec;

  fail_unless_equals_string (G_OBJECT_TYPE_NAME (sink), "GstPeerTreeSink");
  fail_unless_equals_int (gst_uri_handler_get_uri_type (GST_URI_HANDLER (sink)),
      GST_URI_SINK);
  g_object_get (sink, "server", &server, "tree-id", &tree, "client-id", &client, "k", &k,
      "k1", &k1, "video-codec", &codec, NULL);
  fail_unless_equals_string (server, "ws://127.0.0.1:8645");
  fail_unless_equals_string (tree, "show");
  fail_unless_equals_string (client, "src-1");
  fail_unless_equals_int (k, 3);
  fail_unless_equals_int (k1, 5);
  fail_unless_equals_int (codec, 1 /* h264 */ );
  uri = gst_uri_handler_get_uri (GST_URI_HANDLER (sink));
  fail_unless_equals_string (uri,
      "peertree://127.0.0.1:8645/show?client-id=src-1&k=3&k1=5&video-codec=h264");

  /* a source may leave the tree id to the server */
  fail_unless (gst_uri_handler_set_uri (GST_URI_HANDLER (sink), "peertree://192.0.2.1:9000/",
          NULL));
  g_clear_pointer (&tree, g_free);
  g_object_get (sink, "tree-id", &tree, NULL);
  fail_unless (tree == NULL);
  g_clear_pointer (&uri, g_free);
  uri = gst_uri_handler_get_uri (GST_URI_HANDLER (sink));
  fail_unless_equals_string (uri,
      "peertree://192.0.2.1:9000/?client-id=src-1&k=3&k1=5&video-codec=h264");
  gst_object_unref (sink);
}

GST_END_TEST;

/* properties → URI → a new element → the same URI and properties */
GST_START_TEST (test_round_trip)
{
  const gchar *names[] = { "peertreesrc", "peertreesink" };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    GstElement *a = gst_element_factory_make (names[i], NULL);
    GstElement *b = gst_element_factory_make (names[i], NULL);
    g_autofree gchar *uri = NULL, *uri2 = NULL;
    g_autofree gchar *tree = NULL, *addrs = NULL, *client = NULL;
    g_autoptr (GError) error = NULL;

    g_object_set (a, "server", "ws://[::1]:8645", "tree-id", "a-tree_1",
        "local-addresses", "127.0.0.1,10.0.0.2", "client-id", "c-1", NULL);
    uri = gst_uri_handler_get_uri (GST_URI_HANDLER (a));
    fail_unless (uri != NULL, "%s", names[i]);
    fail_unless (gst_uri_handler_set_uri (GST_URI_HANDLER (b), uri, &error), "%s: %s: %s",
        names[i], uri, error ? error->message : "");
    uri2 = gst_uri_handler_get_uri (GST_URI_HANDLER (b));
    fail_unless_equals_string (uri, uri2);
    g_object_get (b, "tree-id", &tree, "local-addresses", &addrs, "client-id", &client, NULL);
    fail_unless_equals_string (tree, "a-tree_1");
    fail_unless_equals_string (addrs, "127.0.0.1,10.0.0.2");
    fail_unless_equals_string (client, "c-1");
    gst_object_unref (a);
    gst_object_unref (b);
  }
}

GST_END_TEST;

GST_START_TEST (test_bad_uris)
{
  const gchar *names[] = { "peertreesrc", "peertreesink" };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    GstElement *e = gst_element_factory_make (names[i], NULL);
    gboolean is_src = i == 0;

    g_object_set (e, "server", "ws://192.0.2.1:9000", "tree-id", "t", NULL);
    check_refused (e, "http://host:1/t", GST_URI_ERROR_UNSUPPORTED_PROTOCOL);
    check_refused (e, "peertree:///t", GST_URI_ERROR_BAD_URI);
    check_refused (e, "peertree://host:1/a/b", GST_URI_ERROR_BAD_URI);
    check_refused (e, "not a uri", GST_URI_ERROR_BAD_URI);
    check_refused (e, is_src ? "peertree://host:1/t?latency=soon" :
        "peertree://host:1/t?k=many", GST_URI_ERROR_BAD_URI);
    check_refused (e, is_src ? "peertree://host:1/t?latency=99999" :
        "peertree://host:1/t?video-codec=mpeg2", GST_URI_ERROR_BAD_URI);
    if (is_src)
      check_refused (e, "peertree://host:1/", GST_URI_ERROR_BAD_URI);
    gst_object_unref (e);
  }
}

GST_END_TEST;

/* peertrees:// is the same over TLS (server wss://); tls-ca= names a private
 * CA; both round-trip */
GST_START_TEST (test_tls_uri)
{
  const GstURIType types[] = { GST_URI_SRC, GST_URI_SINK };

  for (guint i = 0; i < G_N_ELEMENTS (types); i++) {
    GstElement *e = from_uri (types[i],
        "peertrees://127.0.0.1:8645/cam-1?tls-ca=/etc/peertree/ca.pem&client-id=v7");
    g_autofree gchar *server = NULL, *ca = NULL, *uri = NULL, *again = NULL;

    g_object_get (e, "server", &server, "tls-ca", &ca, NULL);
    fail_unless_equals_string (server, "wss://127.0.0.1:8645");
    fail_unless_equals_string (ca, "/etc/peertree/ca.pem");
    uri = gst_uri_handler_get_uri (GST_URI_HANDLER (e));
    fail_unless (g_str_has_prefix (uri, "peertrees://127.0.0.1:8645/cam-1?"), "%s", uri);
    g_clear_pointer (&ca, g_free);
    g_object_set (e, "tls-ca", NULL, "server", "ws://h:1", NULL);
    fail_unless (gst_uri_handler_set_uri (GST_URI_HANDLER (e), uri, NULL));
    g_clear_pointer (&server, g_free);
    g_object_get (e, "server", &server, "tls-ca", &ca, NULL);
    fail_unless_equals_string (server, "wss://127.0.0.1:8645");
    fail_unless_equals_string (ca, "/etc/peertree/ca.pem");
    again = gst_uri_handler_get_uri (GST_URI_HANDLER (e));
    fail_unless_equals_string (again, uri);
    /* plain again */
    fail_unless (gst_uri_handler_set_uri (GST_URI_HANDLER (e), "peertree://h:2/t", NULL));
    g_clear_pointer (&server, g_free);
    g_object_get (e, "server", &server, NULL);
    fail_unless_equals_string (server, "ws://h:2");
    gst_object_unref (e);
  }
}

GST_END_TEST;

static Suite *
peertree_uri_suite (void)
{
  Suite *s = suite_create ("peertree-uri");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_src_uri);
  tcase_add_test (tc, test_sink_uri);
  tcase_add_test (tc, test_token_uri);
  tcase_add_test (tc, test_tls_uri);
  tcase_add_test (tc, test_round_trip);
  tcase_add_test (tc, test_bad_uris);
  return s;
}

GST_CHECK_MAIN (peertree_uri);
