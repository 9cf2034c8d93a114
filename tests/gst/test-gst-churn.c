/* Churn with media: relays killed, the source killed and restarted, the
 * signalling server restarted. Peers that get killed run in processes of
 * their own (pt-gst-peer) and die by SIGKILL: no leave, sockets closed by the
 * kernel. Everything else runs in this process, ICE over 127.0.0.1.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The waits are generous bounds (PT_WAIT_MS) that only turn a hang into a
 * failure; nothing asserts speed (see bench/recovery for that).
 */
#include <signal.h>
#include <sys/prctl.h>

#include "pt-gst-test-util.h"

/* light: 2 cores run up to 20 peers */
#define VIDEO "videotestsrc is-live=true pattern=ball ! " \
  "video/x-raw,width=320,height=240,framerate=20/1"

/* ---- peers in processes of their own ---- */

typedef struct {
  gchar *name;
  GSubprocess *proc;
  GCancellable *cancellable;
  GPtrArray *lines;             /* its stdout, read on the default main context */
} PtProc;

static void
proc_read_line (PtProc *p, GDataInputStream *in);

static void
on_proc_line (GObject *source, GAsyncResult *res, gpointer data)
{
  g_autoptr (GError) error = NULL;
  gchar *line = g_data_input_stream_read_line_finish_utf8 (G_DATA_INPUT_STREAM (source), res,
      NULL, &error);
  PtProc *p = data;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;                     /* @p may be gone */
  if (line == NULL) {
    g_object_unref (source);
    return;                     /* EOF: the process ended */
  }
  GST_INFO ("%s: %s", p->name, line);
  g_ptr_array_add (p->lines, line);
  proc_read_line (p, G_DATA_INPUT_STREAM (source));
}

static void
proc_read_line (PtProc *p, GDataInputStream *in)
{
  g_data_input_stream_read_line_async (in, G_PRIORITY_DEFAULT, p->cancellable, on_proc_line, p);
}

/* in the child, before exec: die with the test, whatever happens to it */
static void
proc_child_setup (gpointer data)
{
  (void) data;
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static PtProc *
proc_new (const gchar *name, const gchar *description)
{
  const gchar *helper = g_getenv ("PT_GST_PEER");
  g_autoptr (GSubprocessLauncher) launcher =
      g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_autoptr (GError) error = NULL;
  PtProc *p = g_new0 (PtProc, 1);

  fail_unless (helper != NULL, "PT_GST_PEER is not set (run through meson test)");
  g_subprocess_launcher_set_child_setup (launcher, proc_child_setup, NULL, NULL);
  p->name = g_strdup (name);
  p->lines = g_ptr_array_new_with_free_func (g_free);
  p->cancellable = g_cancellable_new ();
  p->proc = g_subprocess_launcher_spawn (launcher, &error, helper, description, NULL);
  fail_unless (p->proc != NULL, "%s: %s", name, error ? error->message : "");
  proc_read_line (p, g_data_input_stream_new (g_subprocess_get_stdout_pipe (p->proc)));
  return p;
}

static gboolean
proc_has_line (PtProc *p, const gchar *needle)
{
  for (guint i = 0; i < p->lines->len; i++)
    if (strstr (g_ptr_array_index (p->lines, i), needle))
      return TRUE;
  return FALSE;
}

/* No error so far (a killed process is judged up to its death). */
static void
proc_assert_no_error (PtProc *p)
{
  for (guint i = 0; i < p->lines->len; i++)
    fail_if (g_str_has_prefix (g_ptr_array_index (p->lines, i), "error:"), "%s: %s", p->name,
        (gchar *) g_ptr_array_index (p->lines, i));
}

static void
proc_kill (PtProc *p)
{
  g_subprocess_send_signal (p->proc, SIGKILL);
  fail_unless (g_subprocess_wait (p->proc, NULL, NULL));
}

/* Vanishes without closing anything: only keepalives can tell. */
static void
proc_stop (PtProc *p)
{
  g_subprocess_send_signal (p->proc, SIGSTOP);
}

static void
proc_free (PtProc *p)
{
  if (p == NULL)
    return;
  proc_kill (p);
  g_cancellable_cancel (p->cancellable);
  g_object_unref (p->cancellable);
  g_object_unref (p->proc);
  g_ptr_array_unref (p->lines);
  g_free (p->name);
  g_free (p);
}

/* ---- the tree as the in-process server sees it ---- */

/* Parent of @member in @tree: NULL if not a member, "" for the root. */
static gchar *
server_parent (PtServer *server, const gchar *tree, const gchar *member)
{
  g_autoptr (JsonNode) status = pt_server_build_status (server);
  JsonArray *trees = json_object_get_array_member (json_node_get_object (status), "trees");

  for (guint i = 0; i < json_array_get_length (trees); i++) {
    JsonObject *t = json_array_get_object_element (trees, i);
    JsonArray *members;

    if (g_strcmp0 (json_object_get_string_member (t, "id"), tree) != 0)
      continue;
    if (g_strcmp0 (json_object_get_string_member (t, "root"), member) == 0)
      return g_strdup ("");
    members = json_object_get_array_member (t, "members");
    for (guint j = 0; j < json_array_get_length (members); j++) {
      JsonObject *m = json_array_get_object_element (members, j);

      if (g_strcmp0 (json_object_get_string_member (m, "id"), member) == 0)
        return g_strdup (json_object_get_string_member_with_default (m, "parent", ""));
    }
  }
  return NULL;
}

static gboolean
server_has_member (PtServer *server, const gchar *tree, const gchar *member)
{
  g_autofree gchar *parent = server_parent (server, tree, member);

  return parent != NULL;
}

static void
assert_parent (PtServer *server, const gchar *tree, const gchar *member, const gchar *parent)
{
  g_autofree gchar *p = server_parent (server, tree, member);

  fail_unless_equals_string (p, parent);
}

/* ---- in-process nodes ---- */

static PtServer *
churn_server_new (void)
{
  PtServer *server = pt_test_server_new (4, 10);

  /* a peer that stops answering is reaped within about 5 s (pings after
   * 1 s of silence; the server wants dead-timeout above twice that) */
  g_object_set (server, "keepalive-interval", 1, "dead-timeout", 4, NULL);
  return server;
}

static PtNode *
source_new (const gchar *url, const gchar *tree, guint k1, guint k)
{
  g_autofree gchar *desc = g_strdup_printf (VIDEO " ! peertreesink name=s server=%s "
      "tree-id=%s client-id=source k1=%u k=%u local-addresses=" PT_LOCAL, url, tree, k1, k);
  PtNode *node = pt_node_new_launch ("source", desc);

  pt_node_play (node);
  WAIT_UNTIL_MS (pt_node_count_messages (node, "peertree-tree-joined") == 1 ||
      pt_node_has_error (node), PT_WAIT_MS);
  pt_node_assert_no_error (node);
  return node;
}

/* A viewer (decoding or not) that joined and was placed under @parent. */
static PtNode *
viewer_join (PtServer *server, const gchar *url, const gchar *tree, const gchar *name,
    gboolean decode, const gchar *parent)
{
  PtNode *node = pt_viewer_new (name, url, tree, decode);

  pt_node_play (node);
  WAIT_UNTIL_MS (pt_node_count_messages (node, "peertree-tree-joined") == 1 ||
      pt_node_has_error (node), PT_WAIT_MS);
  pt_node_assert_no_error (node);
  if (parent)
    assert_parent (server, tree, name, parent);
  return node;
}

/* A relay (peertreesrc ! fakesink) in a process of its own, placed under
 * @parent. */
static PtProc *
proc_viewer_join (PtServer *server, const gchar *url, const gchar *tree, const gchar *name,
    const gchar *parent)
{
  g_autofree gchar *desc = g_strdup_printf ("peertreesrc server=%s tree-id=%s client-id=%s "
      "local-addresses=" PT_LOCAL " ! fakesink", url, tree, name);
  PtProc *p = proc_new (name, desc);

  WAIT_UNTIL_MS (server_has_member (server, tree, name) || proc_has_line (p, "error:"),
      PT_WAIT_MS);
  proc_assert_no_error (p);
  if (parent)
    assert_parent (server, tree, name, parent);
  return p;
}

static gint
frames (PtNode *node)
{
  return g_atomic_int_get (&node->video_frames);
}

/* Every node in @nodes gets @more frames beyond @before (same order). */
static void
wait_frames (PtNode **nodes, const gint *before, guint n, gint more)
{
  for (guint i = 0; i < n; i++) {
    if (nodes[i] == NULL)
      continue;
    WAIT_UNTIL_MS (frames (nodes[i]) >= before[i] + more || pt_node_has_error (nodes[i]),
        PT_WAIT_MS);
    pt_node_assert_no_error (nodes[i]);
  }
}

/* ---- tests ---- */

/* A 7-peer tree (k1=2, k=2); relay-0 runs in a process of its own and is
 * killed with its two children under it. Both children get a new parent
 * from the server, keep their pads and their pipeline, and produce frames
 * again (decoded: a keyframe was asked for); nobody posts an error. Then a
 * viewer asks for a new parent by hand (reconnect-upstream). */
GST_START_TEST (test_relay_killed)
{
  g_autoptr (PtServer) server = churn_server_new ();
  g_autofree gchar *url = pt_server_get_url (server);
  PtNode *source = source_new (url, "seven", 2, 2);
  PtProc *relay0 = proc_viewer_join (server, url, "seven", "relay-0", "source");
  PtNode *relay1 = viewer_join (server, url, "seven", "relay-1", FALSE, "source");
  PtNode *v[4];
  gint before[4];
  gboolean ok = FALSE;

  /* v0, v1 under relay-0 (decoding); v2, v3 under relay-1 */
  v[0] = viewer_join (server, url, "seven", "v0", TRUE, "relay-0");
  v[1] = viewer_join (server, url, "seven", "v1", TRUE, "relay-0");
  v[2] = viewer_join (server, url, "seven", "v2", FALSE, "relay-1");
  v[3] = viewer_join (server, url, "seven", "v3", FALSE, "relay-1");
  memset (before, 0, sizeof before);
  wait_frames (v, before, 4, 10);

  for (guint i = 0; i < 4; i++)
    before[i] = frames (v[i]);
  proc_kill (relay0);
  /* the server re-parents the orphans at once; they switch to the new
   * parent without an error, without EOS, with the same pads */
  WAIT_UNTIL_MS (pt_node_count_messages (v[0], "peertree-upstream-changed") == 1 &&
      pt_node_count_messages (v[1], "peertree-upstream-changed") == 1, PT_WAIT_MS);
  wait_frames (v, before, 4, 30);
  for (guint i = 0; i < 2; i++) {
    g_autoptr (GstStructure) s = pt_node_get_message (v[i], "peertree-upstream-changed", 0);

    fail_if (g_strcmp0 (gst_structure_get_string (s, "parent-id"), "relay-0") == 0);
    fail_if (pt_node_got_eos (v[i]));
    g_mutex_lock (&v[i]->lock);
    fail_unless_equals_string (v[i]->video_caps_name, "video/x-raw");
    g_mutex_unlock (&v[i]->lock);
  }
  fail_unless_equals_int (pt_node_count_messages (v[2], "peertree-upstream-changed"), 0);

  /* by hand: v2 asks for another parent and keeps receiving */
  {
    GstElement *src = gst_bin_get_by_name (GST_BIN (v[2]->pipeline), "src");

    g_signal_emit_by_name (src, "reconnect-upstream", &ok);
    fail_unless (ok);
    gst_object_unref (src);
  }
  WAIT_UNTIL_MS (pt_node_count_messages (v[2], "peertree-upstream-changed") == 1, PT_WAIT_MS);
  for (guint i = 0; i < 4; i++)
    before[i] = frames (v[i]);
  wait_frames (v, before, 4, 20);

  pt_node_assert_no_error (source);
  pt_node_assert_no_error (relay1);
  proc_assert_no_error (relay0);
  for (guint i = 0; i < 4; i++) {
    pt_node_assert_no_error (v[i]);
    pt_node_free (v[i]);
  }
  pt_node_free (relay1);
  pt_node_free (source);
  proc_free (relay0);
  pt_server_stop (server);
}

GST_END_TEST;

/* A 20-peer tree (k1=2, k=2: 9 relays); 3 relays at depths 1, 2 and 3, in
 * processes of their own, die at once: two are killed (SIGKILL: the kernel
 * closes their sockets), one is frozen (SIGSTOP: it just stops answering, and
 * the server's keepalive finds it). Every survivor receives frames again, and
 * nobody posts an error. */
#define N_VIEWERS 19
GST_START_TEST (test_third_of_relays_killed)
{
  g_autoptr (PtServer) server = churn_server_new ();
  g_autofree gchar *url = pt_server_get_url (server);
  /* breadth-first placement in join order: v0, v1 at depth 1; v2-v5 at
   * depth 2; v6-v13 at depth 3; v14-v18 at depth 4. v1, v3, v7 have two
   * children each. */
  static const guint killed[] = { 1, 3, 7 };
  static const gchar *parents[N_VIEWERS] = { "source", "source", "v0", "v0", "v1", "v1",
    "v2", "v2", "v3", "v3", "v4", "v4", "v5", "v5", "v6", "v6", "v7", "v7", "v8"
  };
  PtNode *source = source_new (url, "twenty", 2, 2);
  PtNode *v[N_VIEWERS] = { NULL, };
  PtProc *procs[G_N_ELEMENTS (killed)] = { NULL, };
  gint before[N_VIEWERS] = { 0, };

  for (guint i = 0, next_kill = 0; i < N_VIEWERS; i++) {
    g_autofree gchar *name = g_strdup_printf ("v%u", i);

    if (next_kill < G_N_ELEMENTS (killed) && killed[next_kill] == i)
      procs[next_kill++] = proc_viewer_join (server, url, "twenty", name, parents[i]);
    else
      v[i] = viewer_join (server, url, "twenty", name, FALSE, parents[i]);
  }
  wait_frames (v, before, N_VIEWERS, 5);

  for (guint i = 0; i < N_VIEWERS; i++)
    before[i] = v[i] ? frames (v[i]) : 0;
  proc_kill (procs[0]);
  proc_kill (procs[1]);
  proc_stop (procs[2]);
  wait_frames (v, before, N_VIEWERS, 20);

  /* the orphans were moved, the rest stayed where they were */
  for (guint i = 0; i < N_VIEWERS; i++) {
    gboolean orphan = FALSE;

    for (guint k = 0; k < G_N_ELEMENTS (killed); k++) {
      g_autofree gchar *dead = g_strdup_printf ("v%u", killed[k]);

      orphan |= g_str_equal (parents[i], dead);
    }
    if (v[i] == NULL)
      continue;
    pt_node_assert_no_error (v[i]);
    fail_unless_equals_int (pt_node_count_messages (v[i], "peertree-upstream-changed"),
        orphan ? 1 : 0);
  }
  pt_node_assert_no_error (source);
  for (guint i = 0; i < G_N_ELEMENTS (procs); i++) {
    proc_assert_no_error (procs[i]);
    proc_free (procs[i]);
  }
  for (guint i = N_VIEWERS; i > 0; i--)
    pt_node_free (v[i - 1]);
  pt_node_free (source);
  pt_server_stop (server);
}

GST_END_TEST;

/* The source (a process of its own) is killed; the tree waits for it. A new
 * source process with the tree's secret takes the tree back, first under the
 * same client id (the server tells nobody: the new source finds its
 * children), then under another one (the server re-parents its children):
 * the viewers never rejoin, never post an error or EOS, and receive again.
 * When the source is gone for longer than the grace period, the viewers get
 * EOS and a tree-closed message saying why. */
GST_START_TEST (test_source_restarted)
{
  g_autoptr (PtServer) server = churn_server_new ();
  g_autofree gchar *url = pt_server_get_url (server);
  g_autofree gchar *desc_a = NULL, *desc_b = NULL;
  PtProc *cam;
  PtNode *v[3];
  gint before[3] = { 0, };

  g_object_set (server, "source-grace", 30, NULL);
#define CAM VIDEO " ! peertreesink server=%s tree-id=grace client-id=%s secret=s3cret " \
    "k1=1 k=2 local-addresses=" PT_LOCAL
  desc_a = g_strdup_printf (CAM, url, "cam-a");
  desc_b = g_strdup_printf (CAM, url, "cam-b");
#undef CAM
  cam = proc_new ("cam-a", desc_a);
  WAIT_UNTIL_MS (server_has_member (server, "grace", "cam-a") || proc_has_line (cam, "error:"),
      PT_WAIT_MS);
  proc_assert_no_error (cam);
  v[0] = viewer_join (server, url, "grace", "relay", FALSE, "cam-a");
  v[1] = viewer_join (server, url, "grace", "v1", TRUE, "relay");
  v[2] = viewer_join (server, url, "grace", "v2", FALSE, "relay");
  wait_frames (v, before, 3, 10);

  /* a new process under the same client id: new SSRC, the same secret */
  proc_free (cam);
  for (guint i = 0; i < 3; i++)
    WAIT_UNTIL_MS (pt_node_count_messages (v[i], "peertree-source-lost") == 1, PT_WAIT_MS);
  assert_parent (server, "grace", "v1", "relay");
  for (guint i = 0; i < 3; i++)
    before[i] = frames (v[i]);
  cam = proc_new ("cam-a", desc_a);
  wait_frames (v, before, 3, 30);
  proc_assert_no_error (cam);
  assert_parent (server, "grace", "relay", "cam-a");

  /* a new process under another client id */
  proc_free (cam);
  for (guint i = 0; i < 3; i++)
    WAIT_UNTIL_MS (pt_node_count_messages (v[i], "peertree-source-lost") == 2, PT_WAIT_MS);
  for (guint i = 0; i < 3; i++)
    before[i] = frames (v[i]);
  cam = proc_new ("cam-b", desc_b);
  wait_frames (v, before, 3, 30);
  proc_assert_no_error (cam);
  for (guint i = 0; i < 3; i++) {
    pt_node_assert_no_error (v[i]);
    fail_if (pt_node_got_eos (v[i]));
    fail_unless_equals_int (pt_node_count_messages (v[i], "peertree-tree-joined"), 1);
  }
  /* only the source's child was told about a new parent: once, for the new
   * client id (under the same id it just got a new offer from its parent) */
  fail_unless_equals_int (pt_node_count_messages (v[0], "peertree-upstream-changed"), 1);
  fail_unless_equals_int (pt_node_count_messages (v[1], "peertree-upstream-changed"), 0);
  fail_unless_equals_int (pt_node_count_messages (v[2], "peertree-upstream-changed"), 0);
  assert_parent (server, "grace", "relay", "cam-b");
  assert_parent (server, "grace", "v1", "relay");

  /* gone for good: the tree closes after the grace period */
  g_object_set (server, "source-grace", 1, NULL);
  proc_kill (cam);
  for (guint i = 0; i < 3; i++) {
    g_autoptr (GstStructure) closed = NULL;

    WAIT_UNTIL_MS (pt_node_got_eos (v[i]) || pt_node_has_error (v[i]), PT_WAIT_MS);
    pt_node_assert_no_error (v[i]);
    closed = pt_node_get_message (v[i], "peertree-tree-closed", 0);
    fail_unless (closed != NULL);
    fail_unless_equals_string (gst_structure_get_string (closed, "reason"), "source-timeout");
    fail_unless (strstr (gst_structure_get_string (closed, "description"), "grace") != NULL);
  }
  for (guint i = 0; i < 3; i++)
    pt_node_free (v[i]);
  proc_free (cam);
  pt_server_stop (server);
}

GST_END_TEST;

/* The signalling server goes away and a new one comes up on the same port:
 * the media links never stop, the clients reconnect and re-register by
 * themselves (nobody changes parent), and a new viewer can join. */
GST_START_TEST (test_server_restarted)
{
  PtServer *server = churn_server_new ();
  guint port = pt_server_get_port (server);
  g_autofree gchar *url = pt_server_get_url (server);
  g_autoptr (GError) error = NULL;
  PtNode *source = source_new (url, "restart", 1, 2);
  PtNode *v[4] = { NULL, };
  gint before[4] = { 0, };

  v[0] = viewer_join (server, url, "restart", "relay", FALSE, "source");
  v[1] = viewer_join (server, url, "restart", "v1", TRUE, "relay");
  v[2] = viewer_join (server, url, "restart", "v2", FALSE, "relay");
  wait_frames (v, before, 3, 10);

  g_object_unref (server);
  for (guint i = 0; i < 3; i++) {
    WAIT_UNTIL_MS (pt_node_count_messages (v[i], "peertree-server-disconnected") == 1,
        PT_WAIT_MS);
    before[i] = frames (v[i]);
  }
  /* no server at all, and the frames keep coming */
  wait_frames (v, before, 3, 20);

  server = g_object_new (PT_TYPE_SERVER, "host", "127.0.0.1", "port", port, NULL);
  fail_unless (pt_server_listen (server, &error), "%s", error ? error->message : "");
  for (guint i = 0; i < 3; i++)
    WAIT_UNTIL_MS (pt_node_count_messages (v[i], "peertree-server-reconnected") == 1,
        PT_WAIT_MS);
  WAIT_UNTIL_MS (server_has_member (server, "restart", "relay") &&
      server_has_member (server, "restart", "v1") &&
      server_has_member (server, "restart", "v2"), PT_WAIT_MS);
  assert_parent (server, "restart", "relay", "source");
  assert_parent (server, "restart", "v1", "relay");

  /* the rebuilt tree takes new viewers (under the relay: the source is full) */
  v[3] = viewer_join (server, url, "restart", "late", TRUE, NULL);
  for (guint i = 0; i < 3; i++)
    before[i] = frames (v[i]);
  before[3] = 0;
  wait_frames (v, before, 4, 10);
  for (guint i = 0; i < 4; i++) {
    pt_node_assert_no_error (v[i]);
    fail_unless_equals_int (pt_node_count_messages (v[i], "peertree-tree-joined"), 1);
    fail_unless_equals_int (pt_node_count_messages (v[i], "peertree-upstream-changed"), 0);
  }
  pt_node_assert_no_error (source);
  for (guint i = 4; i > 0; i--)
    pt_node_free (v[i - 1]);
  pt_node_free (source);
  pt_server_stop (server);
  g_object_unref (server);
}

GST_END_TEST;

static Suite *
peertree_churn_suite (void)
{
  Suite *s = suite_create ("peertree-churn");
  TCase *tc = tcase_create ("churn");

  pt_gst_tolerate_rtpsession_race ();

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_relay_killed);
  tcase_add_test (tc, test_third_of_relays_killed);
  tcase_add_test (tc, test_source_restarted);
  tcase_add_test (tc, test_server_restarted);
  return s;
}

GST_CHECK_MAIN (peertree_churn);
