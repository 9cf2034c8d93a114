/* peertreesink / peertreesrc without media: life cycle, properties, URI,
 * and the errors a user meets (server unreachable, unknown tree, refusal).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-gst-test-util.h"

/* A port nothing listens on: bind an ephemeral port, then close it. */
static gchar *
unused_server_url (void)
{
  g_autoptr (GSocket) sock = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM,
      G_SOCKET_PROTOCOL_TCP, NULL);
  g_autoptr (GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) addr = g_inet_socket_address_new (lo, 0);
  g_autoptr (GSocketAddress) bound = NULL;
  guint port;

  fail_unless (sock != NULL);
  fail_unless (g_socket_bind (sock, addr, TRUE, NULL));
  bound = g_socket_get_local_address (sock, NULL);
  port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
  g_socket_close (sock, NULL);
  return g_strdup_printf ("ws://127.0.0.1:%u", port);
}

GST_START_TEST (test_create_unref)
{
  const gchar *names[] = { "peertreesink", "peertreesrc" };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    GstElement *e = gst_element_factory_make (names[i], NULL);

    fail_unless (e != NULL, "%s not found", names[i]);
    gst_object_unref (e);

    /* through READY and back, as gst-launch does on a failed start */
    e = gst_element_factory_make (names[i], NULL);
    fail_unless_equals_int (gst_element_set_state (e, GST_STATE_READY),
        GST_STATE_CHANGE_SUCCESS);
    fail_unless_equals_int (gst_element_set_state (e, GST_STATE_NULL),
        GST_STATE_CHANGE_SUCCESS);
    gst_object_unref (e);
  }
  {
    /* request pads are released with the element */
    GstElement *sink = gst_element_factory_make ("peertreesink", NULL);
    GstPad *v = gst_element_request_pad_simple (sink, "video_%u");
    GstPad *a = gst_element_request_pad_simple (sink, "audio_%u");

    fail_unless (v != NULL && a != NULL);
    fail_unless_equals_string (GST_PAD_NAME (v), "video_0");
    fail_unless_equals_string (GST_PAD_NAME (a), "audio_0");
    gst_element_release_request_pad (sink, a);
    gst_object_unref (a);
    gst_object_unref (v);
    gst_object_unref (sink);
  }
}

GST_END_TEST;

/* Every property has a real description and a default gst-inspect shows. */
GST_START_TEST (test_properties_documented)
{
  const gchar *names[] = { "peertreesink", "peertreesrc" };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    GstElement *e = gst_element_factory_make (names[i], NULL);
    guint n;
    g_autofree GParamSpec **props = g_object_class_list_properties (G_OBJECT_GET_CLASS (e), &n);

    for (guint p = 0; p < n; p++) {
      GParamSpec *ps = props[p];
      const gchar *blurb = g_param_spec_get_blurb (ps);

      if (ps->owner_type != G_OBJECT_TYPE (e))
        continue;               /* GstBin's / GstObject's own */
      fail_unless (blurb != NULL && strlen (blurb) > 20, "%s::%s has no real blurb",
          names[i], ps->name);
      fail_if (g_str_equal (blurb, g_param_spec_get_nick (ps)), "%s::%s blurb is its nick",
          names[i], ps->name);
      if (ps->flags & G_PARAM_WRITABLE) {
        GValue v = G_VALUE_INIT;

        /* a fresh element holds the advertised default */
        g_value_init (&v, ps->value_type);
        g_object_get_property (G_OBJECT (e), ps->name, &v);
        fail_unless (g_param_value_defaults (ps, &v), "%s::%s does not start at its default",
            names[i], ps->name);
        g_value_unset (&v);
      }
    }
    gst_object_unref (e);
  }
}

GST_END_TEST;

GST_START_TEST (test_uri_round_trip)
{
  GstElement *src = gst_element_make_from_uri (GST_URI_SRC,
      "peertree://127.0.0.1:8645/cam-1?local-addresses=127.0.0.1,10.0.0.2&client-id=v7&latency=50",
      NULL, NULL);
  g_autofree gchar *server = NULL, *tree = NULL, *addrs = NULL, *client = NULL;
  g_autofree gchar *uri = NULL, *uri2 = NULL;
  g_autoptr (GError) error = NULL;
  guint latency;

  fail_unless (src != NULL, "no element for peertree:// URIs");
  fail_unless_equals_string (G_OBJECT_TYPE_NAME (src), "GstPeerTreeSrc");
  g_object_get (src, "server", &server, "tree-id", &tree, "local-addresses", &addrs,
      "client-id", &client, "latency", &latency, NULL);
  fail_unless_equals_string (server, "ws://127.0.0.1:8645");
  fail_unless_equals_string (tree, "cam-1");
  fail_unless_equals_string (addrs, "127.0.0.1,10.0.0.2");
  fail_unless_equals_string (client, "v7");
  fail_unless_equals_int (latency, 50);

  /* properties → URI → the same properties */
  uri = gst_uri_handler_get_uri (GST_URI_HANDLER (src));
  fail_unless (uri != NULL);
  gst_object_unref (src);
  src = gst_element_factory_make ("peertreesrc", NULL);
  fail_unless (gst_uri_handler_set_uri (GST_URI_HANDLER (src), uri, &error), "%s",
      error ? error->message : "");
  g_object_get (src, "uri", &uri2, NULL);
  fail_unless_equals_string (uri, uri2);
  g_clear_pointer (&server, g_free);
  g_clear_pointer (&tree, g_free);
  g_clear_pointer (&addrs, g_free);
  g_clear_pointer (&client, g_free);
  g_object_get (src, "server", &server, "tree-id", &tree, "local-addresses", &addrs,
      "client-id", &client, "latency", &latency, NULL);
  fail_unless_equals_string (server, "ws://127.0.0.1:8645");
  fail_unless_equals_string (tree, "cam-1");
  fail_unless_equals_string (addrs, "127.0.0.1,10.0.0.2");
  fail_unless_equals_string (client, "v7");
  fail_unless_equals_int (latency, 50);

  /* set through properties, read as a URI (a default value is left out) */
  g_object_set (src, "server", "ws://192.0.2.1:9000", "tree-id", "t", "client-id", NULL,
      "local-addresses", NULL, "latency", G_PARAM_SPEC_UINT (g_object_class_find_property
          (G_OBJECT_GET_CLASS (src), "latency"))->default_value, NULL);
  g_clear_pointer (&uri, g_free);
  uri = gst_uri_handler_get_uri (GST_URI_HANDLER (src));
  fail_unless_equals_string (uri, "peertree://192.0.2.1:9000/t");

  /* the repair settings (the benchmark anchor: today's behaviour) */
  fail_unless (gst_uri_handler_set_uri (GST_URI_HANDLER (src),
          "peertree://192.0.2.1:9000/t?latency=20&latency-mode=fixed&repair=false", &error),
      "%s", error ? error->message : "");
  {
    gboolean repair = TRUE;
    gint mode = -1;

    g_object_get (src, "repair", &repair, "latency-mode", &mode, "latency", &latency, NULL);
    fail_if (repair);
    fail_unless_equals_int (mode, 1 /* fixed */ );
    fail_unless_equals_int (latency, 20);
  }
  g_clear_pointer (&uri, g_free);
  uri = gst_uri_handler_get_uri (GST_URI_HANDLER (src));
  fail_unless (strstr (uri, "latency-mode=fixed") && strstr (uri, "repair=false"), "%s", uri);
  g_object_set (src, "latency", G_PARAM_SPEC_UINT (g_object_class_find_property
          (G_OBJECT_GET_CLASS (src), "latency"))->default_value, "latency-mode", 0,
      "repair", TRUE, NULL);

  /* bad URIs are refused and change nothing */
  g_clear_error (&error);
  fail_if (gst_uri_handler_set_uri (GST_URI_HANDLER (src), "peertree://host:1/", &error));
  fail_unless (g_error_matches (error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI));
  g_clear_error (&error);
  fail_if (gst_uri_handler_set_uri (GST_URI_HANDLER (src), "http://host:1/t", &error));
  g_clear_error (&error);
  fail_if (gst_uri_handler_set_uri (GST_URI_HANDLER (src), "peertree://host:1/a/b", &error));
  g_clear_pointer (&uri, g_free);
  uri = gst_uri_handler_get_uri (GST_URI_HANDLER (src));
  fail_unless_equals_string (uri, "peertree://192.0.2.1:9000/t");
  gst_object_unref (src);
}

GST_END_TEST;

static void
check_unreachable (const gchar *description_fmt)
{
  g_autofree gchar *url = unused_server_url ();
  g_autofree gchar *desc = g_strdup_printf (description_fmt, url);
  PtNode *node = pt_node_new_launch ("unreachable", desc);
  g_autoptr (GError) err = NULL;

  pt_node_play (node);
  err = pt_node_wait_error (node);
  fail_unless (g_error_matches (err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ_WRITE),
      "unexpected error %s", err->message);
  fail_unless (strstr (err->message, "Could not reach the peertree server") != NULL,
      "unclear message: %s", err->message);
  fail_unless (strstr (err->message, url) != NULL, "message lacks the URL: %s", err->message);
  pt_node_free (node);
}

GST_START_TEST (test_src_server_unreachable)
{
  check_unreachable ("peertreesrc server=%s tree-id=t local-addresses=" PT_LOCAL
      " ! fakesink");
}

GST_END_TEST;

GST_START_TEST (test_sink_server_unreachable)
{
  check_unreachable ("videotestsrc is-live=true ! video/x-raw,width=64,height=48 ! "
      "peertreesink server=%s tree-id=t local-addresses=" PT_LOCAL);
}

GST_END_TEST;

GST_START_TEST (test_src_unknown_tree)
{
  g_autoptr (PtServer) server = pt_test_server_new (2, 2);
  g_autofree gchar *url = pt_server_get_url (server);
  g_autofree gchar *desc = g_strdup_printf ("peertreesrc server=%s tree-id=no-such-tree "
      "local-addresses=" PT_LOCAL " ! fakesink", url);
  PtNode *node = pt_node_new_launch ("viewer", desc);
  g_autoptr (GError) err = NULL;

  pt_node_play (node);
  err = pt_node_wait_error (node);
  fail_unless (g_error_matches (err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND),
      "unexpected error %s", err->message);
  fail_unless (strstr (err->message, "\"no-such-tree\" does not exist") != NULL,
      "unclear message: %s", err->message);
  fail_unless_equals_int (pt_node_count_messages (node, "peertree-tree-joined"), 0);
  pt_node_free (node);
  pt_server_stop (server);
}

GST_END_TEST;

/* No tree-id at all: refused at start, with a hint. */
GST_START_TEST (test_src_no_tree_id)
{
  PtNode *node = pt_node_new_launch ("viewer",
      "peertreesrc server=ws://127.0.0.1:1 local-addresses=" PT_LOCAL " ! fakesink");
  g_autoptr (GError) err = NULL;

  fail_unless_equals_int (gst_element_set_state (node->pipeline, GST_STATE_PLAYING),
      GST_STATE_CHANGE_FAILURE);
  err = pt_node_wait_error (node);
  fail_unless (g_error_matches (err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS));
  fail_unless (strstr (err->message, "tree-id") != NULL, "%s", err->message);
  pt_node_free (node);
}

GST_END_TEST;

/* A second source asking for a tree id in use is refused. */
GST_START_TEST (test_sink_tree_exists)
{
  g_autoptr (PtServer) server = pt_test_server_new (2, 2);
  g_autofree gchar *url = pt_server_get_url (server);
  g_autofree gchar *desc = g_strdup_printf ("peertreesink name=s server=%s tree-id=taken "
      "local-addresses=" PT_LOCAL, url);
  PtNode *first = pt_node_new_launch ("first", desc);
  PtNode *second = pt_node_new_launch ("second", desc);
  g_autoptr (GstStructure) joined = NULL;
  g_autoptr (GError) err = NULL;
  g_autofree gchar *tree = NULL;
  guint depth = 99;

  pt_node_play (first);
  WAIT_UNTIL_MS ((joined = pt_node_get_message (first, "peertree-tree-joined", 0)) != NULL,
      PT_WAIT_MS);
  fail_unless_equals_string (gst_structure_get_string (joined, "tree-id"), "taken");
  fail_unless (gst_structure_get_uint (joined, "depth", &depth));
  fail_unless_equals_int (depth, 0);
  fail_unless (gst_structure_get_string (joined, "client-id") != NULL);
  {
    GstElement *s = gst_bin_get_by_name (GST_BIN (first->pipeline), "s");

    g_object_get (s, "tree-id", &tree, NULL);
    fail_unless_equals_string (tree, "taken");
    gst_object_unref (s);
  }

  pt_node_play (second);
  err = pt_node_wait_error (second);
  fail_unless (g_error_matches (err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_BUSY),
      "unexpected error %s", err->message);
  fail_unless (strstr (err->message, "exists already") != NULL, "%s", err->message);
  pt_node_assert_no_error (first);
  pt_node_free (second);
  pt_node_free (first);
  pt_server_stop (server);
}

GST_END_TEST;

/* The server closes the tree when its source leaves: viewers are told with
 * an element message saying why, and their streams end with EOS (not an
 * error: the broadcast is over), so a recording is finalised. */
GST_START_TEST (test_src_tree_closed)
{
  g_autoptr (PtServer) server = pt_test_server_new (2, 2);
  g_autofree gchar *url = pt_server_get_url (server);
  g_autofree gchar *desc = g_strdup_printf ("videotestsrc is-live=true ! "
      "video/x-raw,width=64,height=48 ! peertreesink server=%s tree-id=closing "
      "local-addresses=" PT_LOCAL, url);
  PtNode *source = pt_node_new_launch ("source", desc);
  PtNode *viewer = pt_viewer_new ("viewer", url, "closing", FALSE);
  g_autoptr (GstStructure) joined = NULL;
  g_autoptr (GstStructure) closed = NULL;

  pt_node_play (source);
  WAIT_UNTIL_MS (pt_node_count_messages (source, "peertree-tree-joined") == 1, PT_WAIT_MS);
  pt_node_play (viewer);
  WAIT_UNTIL_MS ((joined = pt_node_get_message (viewer, "peertree-tree-joined", 0)) != NULL,
      PT_WAIT_MS);
  fail_unless_equals_string (gst_structure_get_string (joined, "client-id"), "viewer");
  fail_unless (gst_structure_get_string (joined, "parent-id") != NULL);
  WAIT_UNTIL_MS (g_atomic_int_get (&viewer->video_frames) > 0, PT_WAIT_MS);

  pt_node_free (source);
  WAIT_UNTIL_MS (pt_node_got_eos (viewer) || pt_node_has_error (viewer), PT_WAIT_MS);
  pt_node_assert_no_error (viewer);
  fail_unless_equals_int (pt_node_count_messages (viewer, "peertree-tree-closed"), 1);
  closed = pt_node_get_message (viewer, "peertree-tree-closed", 0);
  fail_unless_equals_string (gst_structure_get_string (closed, "reason"), "source-left");
  fail_unless (gst_structure_get_string (closed, "description") != NULL);
  pt_node_free (viewer);
  pt_server_stop (server);
}

GST_END_TEST;

/* A tree that closes before the viewer received anything: an error (there
 * is no stream to end). */
GST_START_TEST (test_src_tree_closed_early)
{
  g_autoptr (PtServer) server = pt_test_server_new (2, 2);
  g_autofree gchar *url = pt_server_get_url (server);
  g_autoptr (PeerTreeClient) cam = pt_test_client_new (server, "cam");
  g_autoptr (GError) error = NULL;
  g_autofree gchar *tree = pt_test_create (cam, "empty", 0, 0, &error);
  PtNode *viewer = pt_viewer_new ("viewer", url, "empty", FALSE);
  g_autoptr (GError) err = NULL;

  fail_unless_equals_string (tree, "empty");
  g_object_set (server, "source-grace", 0, NULL);       /* no waiting for the source */
  pt_node_play (viewer);
  WAIT_UNTIL_MS (pt_node_count_messages (viewer, "peertree-tree-joined") == 1, PT_WAIT_MS);
  /* the source never offers; it goes */
  peer_tree_client_close (cam);
  err = pt_node_wait_error (viewer);
  fail_unless (g_error_matches (err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND),
      "unexpected error %s", err->message);
  fail_unless (strstr (err->message, "before any stream arrived") != NULL, "%s", err->message);
  fail_unless_equals_int (pt_node_count_messages (viewer, "peertree-tree-closed"), 1);
  pt_node_free (viewer);
  pt_server_stop (server);
}

GST_END_TEST;

/* peertreesink's secret: empty until started, then a random one an
 * application can keep; a set one is kept. */
GST_START_TEST (test_sink_secret)
{
  g_autoptr (PtServer) server = pt_test_server_new (2, 2);
  g_autofree gchar *url = pt_server_get_url (server);
  g_autofree gchar *desc = g_strdup_printf ("videotestsrc is-live=true ! "
      "video/x-raw,width=64,height=48 ! peertreesink name=s server=%s tree-id=secret "
      "local-addresses=" PT_LOCAL, url);
  PtNode *source = pt_node_new_launch ("source", desc);
  GstElement *sink = gst_bin_get_by_name (GST_BIN (source->pipeline), "s");
  g_autofree gchar *secret = NULL, *again = NULL;

  g_object_get (sink, "secret", &secret, NULL);
  fail_unless (secret == NULL);
  pt_node_play (source);
  WAIT_UNTIL_MS (pt_node_count_messages (source, "peertree-tree-joined") == 1, PT_WAIT_MS);
  g_object_get (sink, "secret", &secret, NULL);
  fail_unless (secret != NULL && strlen (secret) >= 16, "secret %s", secret);
  pt_node_assert_no_error (source);
  gst_object_unref (sink);
  pt_node_free (source);

  sink = gst_element_factory_make ("peertreesink", NULL);
  g_object_set (sink, "secret", "mine", NULL);
  g_object_get (sink, "secret", &again, NULL);
  fail_unless_equals_string (again, "mine");
  gst_object_unref (sink);
  pt_server_stop (server);
}

GST_END_TEST;

static Suite *
peertree_elements_suite (void)
{
  Suite *s = suite_create ("peertree-elements");
  TCase *tc = tcase_create ("general");

  pt_gst_tolerate_rtpsession_race ();

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_create_unref);
  tcase_add_test (tc, test_properties_documented);
  tcase_add_test (tc, test_uri_round_trip);
  tcase_add_test (tc, test_src_server_unreachable);
  tcase_add_test (tc, test_sink_server_unreachable);
  tcase_add_test (tc, test_src_unknown_tree);
  tcase_add_test (tc, test_src_no_tree_id);
  tcase_add_test (tc, test_sink_tree_exists);
  tcase_add_test (tc, test_src_tree_closed);
  tcase_add_test (tc, test_src_tree_closed_early);
  tcase_add_test (tc, test_sink_secret);
  return s;
}

GST_CHECK_MAIN (peertree_elements);
