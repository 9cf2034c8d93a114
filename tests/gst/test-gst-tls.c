/* peertreesink / peertreesrc against a server serving wss:// with a
 * certificate of a throw-away CA: the elements trust it through tls-ca (the
 * property, or tls-ca= in a peertrees:// URI); without it the element fails
 * with an untrusted-certificate error.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-gst-test-util.h"
#include "pt-test-tls.h"

GST_START_TEST (test_elements_over_wss)
{
  g_autoptr (GError) error = NULL;
  pt_tls_make_certificates ();
  g_autofree char *cert = pt_tls_path ("server.pem");
  g_autofree char *key = pt_tls_path ("server.key");
  g_autofree char *ca = pt_tls_path ("ca.pem");
  g_autoptr (PtServer) server = g_object_new (PT_TYPE_SERVER, "host", "127.0.0.1", "port", 0,
      "k", 2, "k1", 2, "tls-cert", cert, "tls-key", key, NULL);
  fail_unless (pt_server_listen (server, &error), "%s", error ? error->message : "");
  g_autofree gchar *url = pt_server_get_url (server);
  fail_unless (g_str_has_prefix (url, "wss://"), "%s", url);

  g_autofree gchar *desc = g_strdup_printf ("videotestsrc is-live=true ! "
      "video/x-raw,width=64,height=48 ! peertreesink name=sink server=%s tree-id=cam1 "
      "client-id=source tls-ca=%s local-addresses=" PT_LOCAL, url, ca);
  PtNode *source = pt_node_new_launch ("source", desc);
  pt_node_play (source);
  WAIT_UNTIL_MS (pt_node_count_messages (source, "peertree-tree-joined") == 1, PT_WAIT_MS);

  /* the viewer through a peertrees:// URI with tls-ca= */
  PtNode *viewer = pt_viewer_new ("viewer", "ws://127.0.0.1:1", "cam1", FALSE);
  GstElement *src = gst_bin_get_by_name (GST_BIN (viewer->pipeline), "src");
  g_autofree gchar *escaped = g_uri_escape_string (ca, NULL, FALSE);
  g_autofree gchar *uri = g_strdup_printf ("peertrees://127.0.0.1:%u/cam1?tls-ca=%s",
      pt_server_get_port (server), escaped);
  fail_unless (gst_uri_handler_set_uri (GST_URI_HANDLER (src), uri, &error), "%s",
      error ? error->message : "");
  gst_object_unref (src);
  pt_node_play (viewer);
  g_autoptr (GstStructure) joined = NULL;
  WAIT_UNTIL_MS ((joined = pt_node_get_message (viewer, "peertree-tree-joined", 0)) != NULL,
      PT_WAIT_MS);
  fail_unless_equals_string (gst_structure_get_string (joined, "parent-id"), "source");
  WAIT_UNTIL_MS (g_atomic_int_get (&viewer->video_frames) > 0, PT_WAIT_MS);
  pt_node_assert_no_error (viewer);

  /* no tls-ca: the certificate is not trusted, an error that says so */
  PtNode *stranger = pt_viewer_new ("stranger", url, "cam1", FALSE);
  pt_node_play (stranger);
  g_autoptr (GError) err = pt_node_wait_error (stranger);
  fail_unless (strstr (err->message, "not trusted") != NULL, "unclear message: %s",
      err->message);
  fail_unless_equals_int (pt_node_count_messages (stranger, "peertree-tree-joined"), 0);

  pt_node_free (stranger);
  pt_node_free (viewer);
  pt_node_free (source);
  pt_server_stop (server);
  pt_tls_remove_certificates ();
}

GST_END_TEST;

static Suite *
peertree_tls_suite (void)
{
  Suite *s = suite_create ("peertree-tls");
  TCase *tc = tcase_create ("tls");

  pt_gst_tolerate_rtpsession_race ();

  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_elements_over_wss);
  suite_add_tcase (s, tc);
  return s;
}

GST_CHECK_MAIN (peertree_tls);
