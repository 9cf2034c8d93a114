/* peertreesink / peertreesrc against a server started with an auth key: the
 * token property (or token= in the URI) goes into hello; without it the
 * element fails with the server's refusal.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-gst-test-util.h"
#include "pt-auth.h"

#include <glib/gstdio.h>

static char *
mint (GBytes *key, const char *sub, const char *rights)
{
  g_autoptr (JsonNode) node = json_from_string (rights, NULL);
  JsonObject *claims = json_node_get_object (node);
  json_object_set_string_member (claims, "sub", sub);
  json_object_set_int_member (claims, "exp", g_get_real_time () / G_USEC_PER_SEC + 600);
  return pt_auth_sign (key, claims);
}

GST_START_TEST (test_src_with_token_joins)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *key_path = NULL;
  int fd = g_file_open_tmp ("peertree-key-XXXXXX", &key_path, &error);
  close (fd);
  fail_unless (g_file_set_contents (key_path, "a key for the element test, 32 bytes+\n", -1,
      NULL));
  g_autoptr (GBytes) key = pt_auth_load_key (key_path, &error);
  fail_unless (key != NULL, "%s", error ? error->message : "");
  g_autoptr (PtServer) server = g_object_new (PT_TYPE_SERVER, "host", "127.0.0.1", "port", 0,
      "k", 2, "k1", 2, "auth-key", key_path, NULL);
  fail_unless (pt_server_listen (server, &error), "%s", error ? error->message : "");
  g_autofree gchar *url = pt_server_get_url (server);
  g_autofree char *src_token = mint (key, "source", "{\"trees\": {\"publish\": [\"cam*\"]}}");
  g_autofree char *viewer_token = mint (key, "viewer", "{\"trees\": {\"view\": [\"cam*\"]}}");

  g_autofree gchar *desc = g_strdup_printf ("videotestsrc is-live=true ! "
      "video/x-raw,width=64,height=48 ! peertreesink name=sink server=%s tree-id=cam1 "
      "client-id=source local-addresses=" PT_LOCAL, url);
  PtNode *source = pt_node_new_launch ("source", desc);
  GstElement *sink = gst_bin_get_by_name (GST_BIN (source->pipeline), "sink");
  g_object_set (sink, "token", src_token, NULL);
  gst_object_unref (sink);
  pt_node_play (source);
  WAIT_UNTIL_MS (pt_node_count_messages (source, "peertree-tree-joined") == 1, PT_WAIT_MS);

  /* the viewer's token through the URI */
  PtNode *viewer = pt_viewer_new ("viewer", url, "cam1", FALSE);
  GstElement *src = gst_bin_get_by_name (GST_BIN (viewer->pipeline), "src");
  g_autofree gchar *uri = g_strdup_printf ("peertree://127.0.0.1:%u/cam1?token=%s",
      pt_server_get_port (server), viewer_token);
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

  /* no token: refused, an error */
  PtNode *intruder = pt_viewer_new ("intruder", url, "cam1", FALSE);
  pt_node_play (intruder);
  g_autoptr (GError) err = pt_node_wait_error (intruder);
  fail_unless (strstr (err->message, "token") != NULL, "unclear message: %s", err->message);
  fail_unless_equals_int (pt_node_count_messages (intruder, "peertree-tree-joined"), 0);

  pt_node_free (intruder);
  pt_node_free (viewer);
  pt_node_free (source);
  pt_server_stop (server);
  g_unlink (key_path);
}

GST_END_TEST;

static Suite *
peertree_auth_suite (void)
{
  Suite *s = suite_create ("peertree-auth");
  TCase *tc = tcase_create ("auth");

  pt_gst_tolerate_rtpsession_race ();

  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_src_with_token_joins);
  suite_add_tcase (s, tc);
  return s;
}

GST_CHECK_MAIN (peertree_auth);
