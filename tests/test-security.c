/* Regression tests of issue 14 (a server that cannot be crashed, starved or
 * impersonated): leaks, floods, unbounded queues, squatting. Each test fails
 * on the server before its fix. Only 127.0.0.1 is used. */
#include "pt-test-util.h"

#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

/* Bytes in use on the heap (0 under a sanitizer that replaces malloc). */
static gsize
heap_in_use (void)
{
  return mallinfo2 ().uordblks;
}

/* ---- V5: leaks ---------------------------------------------------------- */

/* GET /status and the peertree service's list-trees built a document with
 * every tree and never freed part of it: the heap grew with each call. */
GST_START_TEST (test_status_and_list_trees_do_not_leak)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_object_set (server, "max-trees-per-client", 4096, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (PeerTreeClient) src = pt_test_client_new (server, "src");
  for (guint i = 0; i < 300; i++) {
    g_autofree char *id = g_strdup_printf ("tree-%u", i);
    g_autofree char *t = pt_test_create (src, id, 0, 0, &error);
    fail_unless (t != NULL, "%s", error ? error->message : "");
  }
  /* Warm up the allocator and the client's buffers. */
  for (guint i = 0; i < 3; i++)
    json_node_unref (pt_server_build_status (server));
  g_autoptr (JsonObject) params = json_object_new ();
  json_object_set_string_member (params, "service", "peertree");
  json_object_set_string_member (params, "method", "list-trees");
  for (guint i = 0; i < 3; i++) {
    g_autoptr (JsonObject) r = pt_test_request (src, "service-call", params, &error);
    fail_unless (r != NULL, "%s", error ? error->message : "");
  }
  if (heap_in_use () == 0)
    return; /* malloc is not glibc's: nothing to measure */

  gsize before = heap_in_use ();
  for (guint i = 0; i < 100; i++)
    json_node_unref (pt_server_build_status (server));
  gsize after = heap_in_use ();
  /* 300 trees make ~60 KB of JSON objects per call: 6 MB if it leaks. */
  fail_unless (after < before + 512 * 1024, "build_status: heap grew by %" G_GSIZE_FORMAT " bytes",
      after - before);

  before = heap_in_use ();
  for (guint i = 0; i < 100; i++) {
    g_autoptr (JsonObject) r = pt_test_request (src, "service-call", params, &error);
    fail_unless (r != NULL, "%s", error ? error->message : "");
  }
  after = heap_in_use ();
  fail_unless (after < before + 512 * 1024, "list-trees: heap grew by %" G_GSIZE_FORMAT " bytes",
      after - before);
}
GST_END_TEST;

static Suite *
security_suite (void)
{
  Suite *s = suite_create ("security");
  TCase *tc = tcase_create ("general");
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_status_and_list_trees_do_not_leak);
  return s;
}

GST_CHECK_MAIN (security);
