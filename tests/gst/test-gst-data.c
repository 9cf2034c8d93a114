/* Data down the tree, signed by the source: peertreesink data=true and
 * peertreesrc viewers, all pipelines in this process, ICE over 127.0.0.1,
 * signalling through an in-process PtServer. No media: the links carry the
 * data channel alone.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-gst-test-util.h"

#include <signal.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <sys/prctl.h>

/* test hook of peertreesrc (gst/pt-data.h) */
#define TAMPER_KEY "peertree-test-tamper-data"
#define TAMPER_FLIP 1
#define TAMPER_REPLAY 2
#define TAMPER_DROP 3
#define TAMPER_INJECT 4
#define WINDOW_KEY "peertree-test-data-window"

#define N_VIEWERS 6

/* The payload of message @seq: its size and bytes follow from @seq. */
static GBytes *
payload_for (guint64 seq)
{
  gsize size = 1 + (seq * 7919) % 1500;
  guint8 *d = g_malloc (size);
  guint32 x = (guint32) seq * 2654435761u;

  for (gsize i = 0; i < size; i++) {
    x = x * 1103515245u + 12345u;
    d[i] = x >> 24;
  }
  return g_bytes_new_take (d, size);
}

/* What a viewer received through data-received (a webrtcbin thread). */
typedef struct {
  GMutex lock;
  guint64 next;                 /* the seq expected next (from 1) */
  guint64 received;
  gboolean gaps;                /* messages may be missing (told by data-lost) */
  gchar *failure;               /* the first message out of order or altered */
} PtRx;

static void
on_data_received (GstElement *src, GBytes *data, guint64 seq, guint channel, gpointer user)
{
  PtRx *rx = user;
  g_autoptr (GBytes) want = payload_for (seq);

  (void) src;
  g_mutex_lock (&rx->lock);
  if (rx->next == 0)
    rx->next = seq;             /* a viewer that joined mid-stream */
  if (rx->failure == NULL) {
    if (rx->gaps ? seq < rx->next : seq != rx->next)
      rx->failure = g_strdup_printf ("message %" G_GUINT64_FORMAT " after %" G_GUINT64_FORMAT,
          seq, rx->next - 1);
    else if (!g_bytes_equal (data, want))
      rx->failure = g_strdup_printf ("message %" G_GUINT64_FORMAT " altered", seq);
    else if (channel != 65535)
      rx->failure = g_strdup_printf ("message %" G_GUINT64_FORMAT " on channel %u", seq,
          channel);
  }
  rx->next = seq + 1;
  rx->received++;
  g_mutex_unlock (&rx->lock);
}

static guint64
rx_received (PtRx *rx)
{
  guint64 n;

  g_mutex_lock (&rx->lock);
  n = rx->received;
  g_mutex_unlock (&rx->lock);
  return n;
}

/* The "data" field of an element's stats. (transfer full) */
static GstStructure *
data_stats (PtNode *node, const gchar *element)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (node->pipeline), element);
  g_autoptr (GstStructure) stats = NULL;
  const GstStructure *d = NULL;
  GstStructure *ret;

  g_object_get (e, "stats", &stats, NULL);
  gst_object_unref (e);
  if (stats == NULL || !gst_structure_has_field_typed (stats, "data", GST_TYPE_STRUCTURE))
    return gst_structure_new_empty ("data");
  d = gst_value_get_structure (gst_structure_get_value (stats, "data"));
  ret = gst_structure_copy (d);
  return ret;
}

static guint64
data_stat (PtNode *node, const gchar *element, const gchar *field)
{
  g_autoptr (GstStructure) d = data_stats (node, element);
  guint64 v = 0;
  guint u = 0;

  if (!gst_structure_get_uint64 (d, field, &v) && gst_structure_get_uint (d, field, &u))
    v = u;
  return v;
}

typedef struct {
  PtServer *server;
  gchar *url;
  PtNode *source;
  GstElement *sink;
  PtNode *viewers[N_VIEWERS];
  PtRx rx[N_VIEWERS];
} PtDataTree;

/* The sum of the live children (children whose link sent RESUME) over the
 * tree: every viewer is one node's child. */
static guint64
live_children (PtDataTree *t)
{
  guint64 n = data_stat (t->source, "s", "live-children");

  for (guint i = 0; i < N_VIEWERS; i++)
    if (t->viewers[i])
      n += data_stat (t->viewers[i], "v", "live-children");
  return n;
}

/* A source with k1=2 and 6 viewers with k=2: viewers 0 and 1 at depth 1,
 * each the parent of two of viewers 2-5. @tamper: the test hook on viewer 0. */
static PtDataTree *
data_tree_new (gint tamper, guint window)
{
  PtDataTree *t = g_new0 (PtDataTree, 1);
  g_autofree gchar *desc = NULL;

  t->server = pt_test_server_new (4, 10);
  t->url = pt_server_get_url (t->server);
  desc = g_strdup_printf ("peertreesink name=s server=%s tree-id=data k1=2 k=2 data=true "
      "local-addresses=" PT_LOCAL, t->url);
  t->source = pt_node_new_launch ("source", desc);
  t->sink = gst_bin_get_by_name (GST_BIN (t->source->pipeline), "s");
  if (window)
    g_object_set_data (G_OBJECT (t->sink), WINDOW_KEY, GUINT_TO_POINTER (window));
  pt_node_play (t->source);
  WAIT_UNTIL_MS (pt_node_get_message (t->source, "peertree-tree-joined", 0) != NULL
      || pt_node_has_error (t->source), PT_WAIT_MS);
  pt_node_assert_no_error (t->source);

  for (guint i = 0; i < N_VIEWERS; i++) {
    g_autofree gchar *name = g_strdup_printf ("viewer%u", i);
    g_autofree gchar *vdesc = g_strdup_printf ("peertreesrc name=v server=%s tree-id=data "
        "client-id=%s local-addresses=" PT_LOCAL " ! fakesink", t->url, name);
    GstElement *v;
    GstStructure *joined = NULL;

    t->viewers[i] = pt_node_new_launch (name, vdesc);
    v = gst_bin_get_by_name (GST_BIN (t->viewers[i]->pipeline), "v");
    g_mutex_init (&t->rx[i].lock);
    t->rx[i].next = 1;
    g_signal_connect (v, "data-received", G_CALLBACK (on_data_received), &t->rx[i]);
    if (i == 0 && tamper)
      g_object_set_data (G_OBJECT (v), TAMPER_KEY, GINT_TO_POINTER (tamper));
    if (window)
      g_object_set_data (G_OBJECT (v), WINDOW_KEY, GUINT_TO_POINTER (window));
    gst_object_unref (v);
    pt_node_play (t->viewers[i]);
    /* one at a time: the join order makes the shape */
    WAIT_UNTIL_MS ((joined = pt_node_get_message (t->viewers[i], "peertree-tree-joined",
                0)) != NULL || pt_node_has_error (t->viewers[i]), PT_WAIT_MS);
    pt_node_assert_no_error (t->viewers[i]);
    g_clear_pointer (&joined, gst_structure_free);
  }
  /* every link's data channel is open and its child has said where it is */
  {
    gint64 deadline = g_get_monotonic_time () + PT_WAIT_MS * G_GINT64_CONSTANT (1000);

    while (live_children (t) != N_VIEWERS && g_get_monotonic_time () < deadline)
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (500);
    if (live_children (t) != N_VIEWERS) {
      g_autoptr (GString) why = g_string_new (NULL);
      g_autoptr (GstStructure) s = data_stats (t->source, "s");
      g_autofree gchar *str = gst_structure_to_string (s);

      g_string_append_printf (why, "source: %s", str);
      for (guint i = 0; i < N_VIEWERS; i++) {
        g_autoptr (GstStructure) v = data_stats (t->viewers[i], "v");
        g_autofree gchar *vs = gst_structure_to_string (v);

        g_string_append_printf (why, "; viewer%u: %s", i, vs);
      }
      fail ("not every child is live after %d ms: %s", PT_WAIT_MS, why->str);
    }
  }
  return t;
}

static void
data_tree_free (PtDataTree *t)
{
  for (guint i = 0; i < N_VIEWERS; i++) {
    pt_node_free (t->viewers[i]);
    g_mutex_clear (&t->rx[i].lock);
    g_free (t->rx[i].failure);
  }
  gst_object_unref (t->sink);
  pt_node_free (t->source);
  g_free (t->url);
  g_object_unref (t->server);
  g_free (t);
}

static void
send_messages (PtDataTree *t, guint64 first, guint64 last)
{
  for (guint64 seq = first; seq <= last; seq++) {
    g_autoptr (GBytes) b = payload_for (seq);
    gboolean ok = FALSE;

    g_signal_emit_by_name (t->sink, "send-data", b, &ok);
    fail_unless (ok, "send-data refused message %" G_GUINT64_FORMAT, seq);
    /* the server's context (signalling) keeps running */
    if (seq % 64 == 0)
      while (g_main_context_iteration (NULL, FALSE));
  }
}

static void
assert_all_received (PtDataTree *t, guint64 n, gint skip)
{
  for (guint i = 0; i < N_VIEWERS; i++) {
    if ((gint) i == skip || t->viewers[i] == NULL)
      continue;
    WAIT_UNTIL_MS (rx_received (&t->rx[i]) >= n || t->rx[i].failure, PT_WAIT_MS);
    g_mutex_lock (&t->rx[i].lock);
    fail_unless (t->rx[i].failure == NULL, "viewer%u: %s", i, t->rx[i].failure);
    fail_unless_equals_uint64 (t->rx[i].received, n);
    g_mutex_unlock (&t->rx[i].lock);
  }
}

/* 10 000 messages from the source reach all 6 viewers (two levels of
 * relays), every one in order and byte for byte; nothing is forged,
 * replayed or lost anywhere. */
GST_START_TEST (test_data_tree_10000)
{
  PtDataTree *t = data_tree_new (0, 0);
  const guint64 n = 10000;

  send_messages (t, 1, n);
  assert_all_received (t, n, -1);
  fail_unless_equals_uint64 (data_stat (t->source, "s", "published"), n);
  fail_unless_equals_uint64 (data_stat (t->source, "s", "last-seq"), n);
  for (guint i = 0; i < N_VIEWERS; i++) {
    fail_unless_equals_uint64 (data_stat (t->viewers[i], "v", "delivered"), n);
    fail_unless_equals_uint64 (data_stat (t->viewers[i], "v", "forged"), 0);
    fail_unless_equals_uint64 (data_stat (t->viewers[i], "v", "replayed"), 0);
    fail_unless_equals_uint64 (data_stat (t->viewers[i], "v", "lost"), 0);
    pt_node_assert_no_error (t->viewers[i]);
  }
  /* the window is bounded */
  fail_unless (data_stat (t->source, "s", "window-messages") <= 1024);
  data_tree_free (t);
}
GST_END_TEST;

/* Relay viewer0 flips a bit of everything it forwards (or sends it twice):
 * its children detect it, drop it, report it (a warning, a
 * peertree-data-rejected message, the forged/replayed counter), the server
 * places them under other parents, which resend what they missed: every
 * viewer ends with every message, genuine and in order, and viewer0 has no
 * child left. */
static guint
n_rejecting (PtDataTree *t, const gchar *counter)
{
  guint n = 0;

  for (guint i = 2; i < N_VIEWERS; i++)
    n += data_stat (t->viewers[i], "v", counter) > 0;
  return n;
}

static void
check_tamper (gint tamper, const gchar *counter, const gchar *reason)
{
  PtDataTree *t = data_tree_new (tamper, 0);
  const guint64 n = 600;
  guint rejected = 0;

  send_messages (t, 1, 300);
  /* viewer0's children: two of viewers 2-5 */
  /* the first report moves both (the second may be moved before it sees
   * anything from viewer0) */
  WAIT_UNTIL_MS (n_rejecting (t, counter) >= 1, PT_WAIT_MS);
  for (guint i = 2; i < N_VIEWERS; i++) {
    GstStructure *s = NULL;

    if (data_stat (t->viewers[i], "v", counter) == 0)
      continue;
    rejected++;
    WAIT_UNTIL_MS ((s = pt_node_get_message (t->viewers[i], "peertree-data-rejected", 0))
        != NULL, PT_WAIT_MS);
    fail_unless_equals_string (gst_structure_get_string (s, "parent-id"), "viewer0");
    fail_unless_equals_string (gst_structure_get_string (s, "reason"), reason);
    gst_structure_free (s);
  }
  send_messages (t, 301, n);
  assert_all_received (t, n, -1);
  fail_unless (rejected >= 1 && rejected <= 2);
  for (guint i = 0; i < N_VIEWERS; i++)
    fail_unless_equals_uint64 (data_stat (t->viewers[i], "v", "lost"), 0);
  WAIT_UNTIL_MS (data_stat (t->viewers[0], "v", "children") == 0, PT_WAIT_MS);
  data_tree_free (t);
}

GST_START_TEST (test_data_tampering_relay)
{
  check_tamper (TAMPER_FLIP, "forged", "forged");
}
GST_END_TEST;

GST_START_TEST (test_data_replaying_relay)
{
  check_tamper (TAMPER_REPLAY, "replayed", "replayed");
}
GST_END_TEST;

/* a message of its own after each genuine one */
GST_START_TEST (test_data_injecting_relay)
{
  check_tamper (TAMPER_INJECT, "forged", "forged");
}
GST_END_TEST;

/* Relay viewer0 stops mid-stream: the server places its children elsewhere
 * and their new parents resend what they missed from their windows; every
 * remaining viewer gets every message, in order, and none is lost. */
GST_START_TEST (test_data_relay_gone)
{
  PtDataTree *t = data_tree_new (0, 0);
  const guint64 n = 1000;

  send_messages (t, 1, 500);
  pt_node_free (t->viewers[0]);
  t->viewers[0] = NULL;
  send_messages (t, 501, n);
  assert_all_received (t, n, 0);
  for (guint i = 1; i < N_VIEWERS; i++) {
    fail_unless_equals_uint64 (data_stat (t->viewers[i], "v", "lost"), 0);
    fail_unless_equals_uint64 (data_stat (t->viewers[i], "v", "forged"), 0);
    fail_unless_equals_uint64 (data_stat (t->viewers[i], "v", "replayed"), 0);
  }
  data_tree_free (t);
}
GST_END_TEST;

/* What a viewer's data_0 pad gave out (a streaming thread). */
typedef struct {
  GMutex lock;
  guint buffers;
  guint video_frames;
  gchar *caps;
  gchar *failure;
} PtPadRx;

#define PAD_CAPS "meta/x-klv, parsed=(boolean)true"
#define N_PAD_MESSAGES 40
/* message i: PTS i * 40 ms, payload_for (i + 1); the last is 64 KiB */
#define PAD_PTS(i) ((GstClockTime) (i) * 40 * GST_MSECOND)

static GBytes *
pad_payload (guint i)
{
  if (i == N_PAD_MESSAGES - 1) {
    guint8 *d = g_malloc (65536);

    for (guint j = 0; j < 65536; j++)
      d[j] = (j * 31 + 7) & 0xff;
    return g_bytes_new_take (d, 65536);
  }
  return payload_for (i + 1);
}

static GstPadProbeReturn
on_data_pad_buffer (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  PtPadRx *rx = data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  g_autoptr (GstCaps) caps = gst_pad_get_current_caps (pad);
  GstMapInfo map;

  g_mutex_lock (&rx->lock);
  if (rx->caps == NULL && caps)
    rx->caps = gst_caps_to_string (caps);
  if (rx->failure == NULL && gst_buffer_map (buf, &map, GST_MAP_READ)) {
    g_autoptr (GBytes) want = pad_payload (rx->buffers);
    g_autoptr (GBytes) got = g_bytes_new (map.data, map.size);

    if (!g_bytes_equal (want, got))
      rx->failure = g_strdup_printf ("buffer %u altered (%" G_GSIZE_FORMAT " bytes)",
          rx->buffers, map.size);
    else if (GST_BUFFER_PTS (buf) != PAD_PTS (rx->buffers))
      rx->failure = g_strdup_printf ("buffer %u: PTS %" GST_TIME_FORMAT, rx->buffers,
          GST_TIME_ARGS (GST_BUFFER_PTS (buf)));
    gst_buffer_unmap (buf, &map);
  }
  rx->buffers++;
  g_mutex_unlock (&rx->lock);
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
on_video_buffer (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  PtPadRx *rx = data;

  (void) pad;
  (void) info;
  g_mutex_lock (&rx->lock);
  rx->video_frames++;
  g_mutex_unlock (&rx->lock);
  return GST_PAD_PROBE_OK;
}

static void
on_viewer_pad (GstElement *src, GstPad *pad, gpointer data)
{
  PtPadRx *rx = data;
  GstElement *pipeline = GST_ELEMENT (gst_object_get_parent (GST_OBJECT (src)));
  GstElement *sink = gst_element_factory_make ("fakesink", NULL);
  g_autoptr (GstPad) sinkpad = gst_element_get_static_pad (sink, "sink");

  g_object_set (sink, "sync", FALSE, "async", FALSE, NULL);
  gst_bin_add (GST_BIN (pipeline), sink);
  gst_element_sync_state_with_parent (sink);
  gst_pad_add_probe (sinkpad, GST_PAD_PROBE_TYPE_BUFFER,
      g_str_has_prefix (GST_PAD_NAME (pad), "data_") ? on_data_pad_buffer : on_video_buffer,
      rx, NULL);
  fail_unless_equals_int (gst_pad_link (pad, sinkpad), GST_PAD_LINK_OK);
  gst_object_unref (pipeline);
}

static guint
pad_rx_buffers (PtPadRx *rx, gboolean video)
{
  guint n;

  g_mutex_lock (&rx->lock);
  n = video ? rx->video_frames : rx->buffers;
  g_mutex_unlock (&rx->lock);
  return n;
}

/* Video and data on the same links: a data_0 request pad of peertreesink
 * (meta/x-klv, PTS on every buffer, the last buffer 64 KiB) comes out of a
 * data_0 pad of every viewer (a relay and its child) with the same caps, the
 * same bytes and the same PTS, while the video keeps flowing; a data pad
 * refuses video caps. */
GST_START_TEST (test_data_pads_with_video)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autofree gchar *url = pt_server_get_url (server);
  g_autofree gchar *desc = g_strdup_printf ("videotestsrc is-live=true ! "
      "video/x-raw,width=160,height=120,framerate=15/1 ! "
      "vp8enc deadline=1 keyframe-max-dist=10000 ! "
      "peertreesink name=s server=%s tree-id=av k1=1 k=1 local-addresses=" PT_LOCAL, url);
  PtNode *source = pt_node_new_launch ("source", desc);
  GstElement *sink = gst_bin_get_by_name (GST_BIN (source->pipeline), "s");
  GstPad *data_pad = gst_element_request_pad_simple (sink, "data_%u");
  GstPad *feed = gst_pad_new ("feed", GST_PAD_SRC);
  PtNode *viewers[2];
  PtPadRx rx[2];
  g_autoptr (GstCaps) caps = gst_caps_from_string (PAD_CAPS);
  g_autoptr (GstCaps) video = gst_caps_from_string ("video/x-raw");
  GstSegment segment;

  fail_unless (data_pad != NULL);
  fail_unless_equals_string (GST_PAD_NAME (data_pad), "data_0");
  fail_unless (!gst_pad_query_accept_caps (data_pad, video));
  gst_pad_set_active (feed, TRUE);
  fail_unless_equals_int (gst_pad_link (feed, data_pad), GST_PAD_LINK_OK);
  pt_node_play (source);
  WAIT_UNTIL_MS (pt_node_get_message (source, "peertree-tree-joined", 0) != NULL
      || pt_node_has_error (source), PT_WAIT_MS);
  pt_node_assert_no_error (source);

  for (guint i = 0; i < 2; i++) {
    g_autofree gchar *name = g_strdup_printf ("viewer%u", i);
    g_autofree gchar *vdesc = g_strdup_printf ("peertreesrc name=v server=%s tree-id=av "
        "client-id=%s local-addresses=" PT_LOCAL, url, name);
    GstElement *v;

    memset (&rx[i], 0, sizeof rx[i]);
    g_mutex_init (&rx[i].lock);
    viewers[i] = pt_node_new_launch (name, vdesc);
    v = gst_bin_get_by_name (GST_BIN (viewers[i]->pipeline), "v");
    g_signal_connect (v, "pad-added", G_CALLBACK (on_viewer_pad), &rx[i]);
    gst_object_unref (v);
    pt_node_play (viewers[i]);
    WAIT_UNTIL_MS (pt_node_get_message (viewers[i], "peertree-tree-joined", 0) != NULL,
        PT_WAIT_MS);
  }
  WAIT_UNTIL_MS (data_stat (source, "s", "live-children") == 1
      && data_stat (viewers[0], "v", "live-children") == 1, PT_WAIT_MS);
  WAIT_UNTIL_MS (pad_rx_buffers (&rx[1], TRUE) > 0, PT_WAIT_MS);

  fail_unless (gst_pad_push_event (feed, gst_event_new_stream_start ("data")));
  fail_unless (gst_pad_push_event (feed, gst_event_new_caps (caps)));
  gst_segment_init (&segment, GST_FORMAT_TIME);
  fail_unless (gst_pad_push_event (feed, gst_event_new_segment (&segment)));
  for (guint i = 0; i < N_PAD_MESSAGES; i++) {
    GstBuffer *buf = gst_buffer_new_wrapped_bytes (pad_payload (i));

    GST_BUFFER_PTS (buf) = PAD_PTS (i);
    fail_unless_equals_int (gst_pad_push (feed, buf), GST_FLOW_OK);
  }
  for (guint i = 0; i < 2; i++) {
    guint frames;

    WAIT_UNTIL_MS (pad_rx_buffers (&rx[i], FALSE) >= N_PAD_MESSAGES, PT_WAIT_MS);
    g_mutex_lock (&rx[i].lock);
    fail_unless (rx[i].failure == NULL, "viewer%u: %s", i, rx[i].failure);
    fail_unless_equals_int (rx[i].buffers, N_PAD_MESSAGES);
    fail_unless (rx[i].caps && g_str_has_prefix (rx[i].caps, "meta/x-klv"), "caps %s",
        rx[i].caps);
    frames = rx[i].video_frames;
    g_mutex_unlock (&rx[i].lock);
    /* the video still flows */
    WAIT_UNTIL_MS (pad_rx_buffers (&rx[i], TRUE) > frames, PT_WAIT_MS);
    pt_node_assert_no_error (viewers[i]);
  }

  for (guint i = 0; i < 2; i++) {
    pt_node_free (viewers[i]);
    g_free (rx[i].caps);
    g_free (rx[i].failure);
    g_mutex_clear (&rx[i].lock);
  }
  gst_pad_set_active (feed, FALSE);
  gst_pad_unlink (feed, data_pad);
  gst_object_unref (feed);
  gst_element_release_request_pad (sink, data_pad);
  gst_object_unref (data_pad);
  gst_object_unref (sink);
  pt_node_free (source);
}
GST_END_TEST;

/* Beyond the window: relay viewer0 stalls (forwards nothing) while the
 * source sends 500 messages, then goes; every node keeps only 100 (a test
 * hook), so its children get the last 100 from their new parents and are
 * told, once, that the 400 before are lost (data-lost, peertree-data-lost,
 * the lost counter); what follows arrives whole. */
static void
on_data_lost (GstElement *src, guint64 seq, guint64 count, gpointer user)
{
  guint64 *lost = user;

  (void) src;
  (void) seq;
  g_atomic_pointer_add ((gsize *) lost, (gssize) count);
}

GST_START_TEST (test_data_lost_beyond_window)
{
  PtDataTree *t = data_tree_new (TAMPER_DROP, 100);
  gsize lost[N_VIEWERS] = { 0 };
  guint children[2], n_children = 0;

  for (guint i = 2; i < N_VIEWERS; i++) {
    GstElement *v = gst_bin_get_by_name (GST_BIN (t->viewers[i]->pipeline), "v");
    GstStructure *joined = pt_node_get_message (t->viewers[i], "peertree-tree-joined", 0);

    g_signal_connect (v, "data-lost", G_CALLBACK (on_data_lost), &lost[i]);
    gst_object_unref (v);
    t->rx[i].gaps = TRUE;
    if (g_strcmp0 (gst_structure_get_string (joined, "parent-id"), "viewer0") == 0)
      children[n_children++] = i;
    gst_structure_free (joined);
  }
  fail_unless_equals_int (n_children, 2);

  send_messages (t, 1, 500);
  /* everyone but viewer0's children has them all */
  for (guint i = 1; i < N_VIEWERS; i++)
    if (i != children[0] && i != children[1])
      WAIT_UNTIL_MS (rx_received (&t->rx[i]) == 500, PT_WAIT_MS);
  fail_unless_equals_uint64 (rx_received (&t->rx[children[0]]), 0);
  pt_node_free (t->viewers[0]);
  t->viewers[0] = NULL;

  for (guint c = 0; c < 2; c++) {
    guint i = children[c];
    GstStructure *s = NULL;
    guint64 seq = 0, count = 0;

    WAIT_UNTIL_MS (rx_received (&t->rx[i]) == 100, PT_WAIT_MS);
    WAIT_UNTIL_MS ((s = pt_node_get_message (t->viewers[i], "peertree-data-lost", 0)) != NULL,
        PT_WAIT_MS);
    fail_unless (gst_structure_get_uint64 (s, "seq", &seq));
    fail_unless (gst_structure_get_uint64 (s, "count", &count));
    fail_unless_equals_uint64 (seq, 401);
    fail_unless_equals_uint64 (count, 400);
    gst_structure_free (s);
    fail_unless_equals_uint64 (g_atomic_pointer_get ((gsize *) & lost[i]), 400);
    fail_unless_equals_uint64 (data_stat (t->viewers[i], "v", "lost"), 400);
  }
  send_messages (t, 501, 600);
  for (guint i = 1; i < N_VIEWERS; i++) {
    gboolean child = i == children[0] || i == children[1];

    WAIT_UNTIL_MS (rx_received (&t->rx[i]) == (child ? 200u : 600u), PT_WAIT_MS);
    g_mutex_lock (&t->rx[i].lock);
    fail_unless (t->rx[i].failure == NULL, "viewer%u: %s", i, t->rx[i].failure);
    g_mutex_unlock (&t->rx[i].lock);
    fail_unless_equals_uint64 (data_stat (t->viewers[i], "v", "lost"), child ? 400 : 0);
  }
  data_tree_free (t);
}
GST_END_TEST;

static gboolean
server_tree_exists (PtServer *server, const gchar *tree)
{
  g_autoptr (JsonNode) status = pt_server_build_status (server);
  JsonArray *trees = json_object_get_array_member (json_node_get_object (status), "trees");

  for (guint i = 0; i < json_array_get_length (trees); i++)
    if (g_strcmp0 (json_object_get_string_member (json_array_get_object_element (trees, i),
                "id"), tree) == 0)
      return TRUE;
  return FALSE;
}

/* in the child, before exec: die with the test */
static void
child_setup (gpointer data)
{
  (void) data;
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static gboolean
parent_open (PtNode *node)
{
  g_autoptr (GstStructure) d = data_stats (node, "v");
  gboolean open = FALSE;

  return gst_structure_get_boolean (d, "parent-open", &open) && open;
}

static guint64
rx_next (PtRx *rx)
{
  guint64 n;

  g_mutex_lock (&rx->lock);
  n = rx->next;
  g_mutex_unlock (&rx->lock);
  return n;
}

/* A relay in a process of its own gets SIGKILL mid-stream (no leave: the
 * server sees its socket close): its two children are placed again (under
 * the source, and under each other), resume from their new parents'
 * windows, and miss nothing: each gets every message from its first on, in
 * order, and counts no loss. */
GST_START_TEST (test_data_relay_killed)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autofree gchar *url = pt_server_get_url (server);
  g_autofree gchar *desc = g_strdup_printf ("peertreesink name=s server=%s tree-id=kill "
      "k1=1 k=2 data=true local-addresses=" PT_LOCAL, url);
  g_autofree gchar *relay_desc = g_strdup_printf ("peertreesrc server=%s tree-id=kill "
      "client-id=relay local-addresses=" PT_LOCAL " ! fakesink", url);
  const gchar *helper = g_getenv ("PT_GST_PEER");
  g_autoptr (GSubprocessLauncher) launcher =
      g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
  g_autoptr (GSubprocess) relay = NULL;
  g_autoptr (GError) error = NULL;
  PtNode *source = pt_node_new_launch ("source", desc);
  GstElement *sink = gst_bin_get_by_name (GST_BIN (source->pipeline), "s");
  PtNode *viewers[2];
  PtRx rx[2];
  PtDataTree t = { 0 };

  fail_unless (helper != NULL, "PT_GST_PEER is not set (run through meson test)");
  pt_node_play (source);
  WAIT_UNTIL_MS (pt_node_get_message (source, "peertree-tree-joined", 0) != NULL, PT_WAIT_MS);
  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);
  relay = g_subprocess_launcher_spawn (launcher, &error, helper, relay_desc, NULL);
  fail_unless (relay != NULL, "%s", error ? error->message : "");
  WAIT_UNTIL_MS (data_stat (source, "s", "live-children") == 1, PT_WAIT_MS);

  for (guint i = 0; i < 2; i++) {
    g_autofree gchar *name = g_strdup_printf ("viewer%u", i);
    g_autofree gchar *vdesc = g_strdup_printf ("peertreesrc name=v server=%s tree-id=kill "
        "client-id=%s local-addresses=" PT_LOCAL " ! fakesink", url, name);
    GstElement *v;

    memset (&rx[i], 0, sizeof rx[i]);
    g_mutex_init (&rx[i].lock);
    viewers[i] = pt_node_new_launch (name, vdesc);
    v = gst_bin_get_by_name (GST_BIN (viewers[i]->pipeline), "v");
    g_signal_connect (v, "data-received", G_CALLBACK (on_data_received), &rx[i]);
    gst_object_unref (v);
    pt_node_play (viewers[i]);
    WAIT_UNTIL_MS (pt_node_get_message (viewers[i], "peertree-tree-joined", 0) != NULL,
        PT_WAIT_MS);
    WAIT_UNTIL_MS (parent_open (viewers[i]), PT_WAIT_MS);
  }

  t.sink = sink;
  send_messages (&t, 1, 300);
  WAIT_UNTIL_MS (rx_next (&rx[0]) > 0 && rx_next (&rx[1]) > 0, PT_WAIT_MS);
  g_subprocess_send_signal (relay, SIGKILL);
  fail_unless (g_subprocess_wait (relay, NULL, NULL));
  send_messages (&t, 301, 800);

  for (guint i = 0; i < 2; i++) {
    WAIT_UNTIL_MS (rx_next (&rx[i]) == 801 || rx[i].failure, PT_WAIT_MS);
    g_mutex_lock (&rx[i].lock);
    fail_unless (rx[i].failure == NULL, "viewer%u: %s", i, rx[i].failure);
    fail_unless_equals_uint64 (rx[i].next, 801);
    g_mutex_unlock (&rx[i].lock);
    fail_unless_equals_uint64 (data_stat (viewers[i], "v", "lost"), 0);
    fail_unless (pt_node_count_messages (viewers[i], "peertree-upstream-changed") > 0,
        "viewer%u was not moved", i);
  }

  for (guint i = 0; i < 2; i++) {
    pt_node_free (viewers[i]);
    g_free (rx[i].failure);
    g_mutex_clear (&rx[i].lock);
  }
  gst_object_unref (sink);
  pt_node_free (source);
}
GST_END_TEST;

/* Unordered, partially reliable (data-ordered=false data-max-retransmits=10
 * at the source): the relays give their children channels with the same
 * settings; every viewer gets every message once (loopback loses nothing),
 * each verified, none taken for a replay. (With 0 retransmissions a loaded
 * machine loses some on loopback too: that is the setting working.) */
typedef struct {
  GMutex lock;
  guint8 seen[2001];
  guint distinct, dups;
  gchar *failure;
} PtSetRx;

static void
on_data_any_order (GstElement *src, GBytes *data, guint64 seq, guint channel, gpointer user)
{
  PtSetRx *rx = user;
  g_autoptr (GBytes) want = payload_for (seq);

  (void) src;
  (void) channel;
  g_mutex_lock (&rx->lock);
  if (seq == 0 || seq > 2000 || !g_bytes_equal (data, want)) {
    if (rx->failure == NULL)
      rx->failure = g_strdup_printf ("message %" G_GUINT64_FORMAT " altered or unknown", seq);
  } else if (rx->seen[seq]++) {
    rx->dups++;
  } else {
    rx->distinct++;
  }
  g_mutex_unlock (&rx->lock);
}

static guint
set_rx_distinct (PtSetRx *rx)
{
  guint n;

  g_mutex_lock (&rx->lock);
  n = rx->distinct;
  g_mutex_unlock (&rx->lock);
  return n;
}

GST_START_TEST (test_data_unordered)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autofree gchar *url = pt_server_get_url (server);
  g_autofree gchar *desc = g_strdup_printf ("peertreesink name=s server=%s tree-id=u k1=1 k=1 "
      "data=true data-ordered=false data-max-retransmits=10 local-addresses=" PT_LOCAL, url);
  PtNode *source = pt_node_new_launch ("source", desc);
  PtDataTree t = { 0 };
  PtNode *viewers[3];
  PtSetRx *rx = g_new0 (PtSetRx, 3);

  t.sink = gst_bin_get_by_name (GST_BIN (source->pipeline), "s");
  pt_node_play (source);
  WAIT_UNTIL_MS (pt_node_get_message (source, "peertree-tree-joined", 0) != NULL, PT_WAIT_MS);
  for (guint i = 0; i < 3; i++) {
    g_autofree gchar *name = g_strdup_printf ("viewer%u", i);
    g_autofree gchar *vdesc = g_strdup_printf ("peertreesrc name=v server=%s tree-id=u "
        "client-id=%s local-addresses=" PT_LOCAL " ! fakesink", url, name);
    GstElement *v;

    g_mutex_init (&rx[i].lock);
    viewers[i] = pt_node_new_launch (name, vdesc);
    v = gst_bin_get_by_name (GST_BIN (viewers[i]->pipeline), "v");
    g_signal_connect (v, "data-received", G_CALLBACK (on_data_any_order), &rx[i]);
    gst_object_unref (v);
    pt_node_play (viewers[i]);
    WAIT_UNTIL_MS (parent_open (viewers[i]), PT_WAIT_MS);
  }
  /* a chain: source → viewer0 → viewer1 → viewer2, each child live */
  WAIT_UNTIL_MS (data_stat (viewers[1], "v", "live-children") == 1
      && data_stat (viewers[0], "v", "live-children") == 1
      && data_stat (source, "s", "live-children") == 1, PT_WAIT_MS);
  for (guint i = 0; i < 3; i++) {
    g_autoptr (GstStructure) d = data_stats (viewers[i], "v");
    gboolean ordered = TRUE;
    gint max_retransmits = -1;

    fail_unless (gst_structure_get_boolean (d, "parent-ordered", &ordered));
    fail_unless (gst_structure_get_int (d, "parent-max-retransmits", &max_retransmits));
    fail_if (ordered, "viewer%u: ordered", i);
    fail_unless_equals_int (max_retransmits, 10);
  }

  send_messages (&t, 1, 2000);
  for (guint i = 0; i < 3; i++) {
    gint64 deadline = g_get_monotonic_time () + PT_WAIT_MS * G_GINT64_CONSTANT (1000);

    while (set_rx_distinct (&rx[i]) < 2000 && !rx[i].failure
        && g_get_monotonic_time () < deadline)
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (500);
    if (set_rx_distinct (&rx[i]) < 2000) {
      g_autoptr (GstStructure) d = data_stats (viewers[i], "v");
      g_autoptr (GstStructure) up = i ? data_stats (viewers[i - 1], "v") :
          data_stats (source, "s");

      fail ("viewer%u got %u of 2000: %" GST_PTR_FORMAT "; its parent: %" GST_PTR_FORMAT, i,
          set_rx_distinct (&rx[i]), d, up);
    }
    g_mutex_lock (&rx[i].lock);
    fail_unless (rx[i].failure == NULL, "viewer%u: %s", i, rx[i].failure);
    fail_unless_equals_int (rx[i].dups, 0);
    g_mutex_unlock (&rx[i].lock);
    fail_unless_equals_uint64 (data_stat (viewers[i], "v", "replayed"), 0);
    fail_unless_equals_uint64 (data_stat (viewers[i], "v", "forged"), 0);
  }

  for (guint i = 0; i < 3; i++) {
    pt_node_free (viewers[i]);
    g_free (rx[i].failure);
    g_mutex_clear (&rx[i].lock);
  }
  g_free (rx);
  gst_object_unref (t.sink);
  pt_node_free (source);
}
GST_END_TEST;

/* A source in a process of its own gets SIGKILL; a new process with the
 * same client-id and secret takes the tree back within the grace period,
 * with a new key pair (numbering from 1 again): the server replaces the
 * tree's key and tells every member (data-key), and the viewers (a relay and
 * its child, whose link to each other stays) verify the new source's data
 * without taking any of it for forged or replayed. */
static GSubprocess *
spawn_source (const gchar *url, const gchar *file)
{
  const gchar *helper = g_getenv ("PT_GST_PEER");
  g_autoptr (GSubprocessLauncher) launcher =
      g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE);
  g_autoptr (GError) error = NULL;
  g_autofree gchar *desc = g_strdup_printf ("filesrc location=%s blocksize=100 ! "
      "identity sleep-time=5000 ! application/x-peertree-data ! s.data_0 "
      "peertreesink name=s server=%s tree-id=again client-id=src secret=s3cret k1=1 k=1 "
      "data=true local-addresses=" PT_LOCAL, file, url);
  GSubprocess *p;

  fail_unless (helper != NULL, "PT_GST_PEER is not set (run through meson test)");
  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);
  p = g_subprocess_launcher_spawn (launcher, &error, helper, desc, NULL);
  fail_unless (p != NULL, "%s", error ? error->message : "");
  return p;
}

static void
count_received (GstElement *src, GBytes *data, guint64 seq, guint channel, gpointer user)
{
  (void) src;
  (void) data;
  (void) seq;
  (void) channel;
  g_atomic_int_inc ((gint *) user);
}

GST_START_TEST (test_data_source_restarts)
{
  g_autoptr (PtServer) server = pt_test_server_new (4, 10);
  g_autofree gchar *url = pt_server_get_url (server);
  g_autofree gchar *file = g_build_filename (g_get_tmp_dir (), "pt-data-XXXXXX", NULL);
  g_autoptr (GSubprocess) first = NULL;
  g_autoptr (GSubprocess) second = NULL;
  PtNode *viewers[2];
  gint received[2] = { 0, 0 };
  gint before[2];
  gint fd = g_mkstemp (file);

  fail_unless (fd >= 0);
  {
    /* 200 000 bytes: 2 000 messages of 100, 10 s at 5 ms each */
    g_autofree guint8 *d = g_malloc (200000);

    for (guint i = 0; i < 200000; i++)
      d[i] = (i * 13) & 0xff;
    fail_unless (write (fd, d, 200000) == 200000);
    close (fd);
  }
  first = spawn_source (url, file);
  for (guint i = 0; i < 2; i++) {
    g_autofree gchar *name = g_strdup_printf ("viewer%u", i);
    g_autofree gchar *vdesc = g_strdup_printf ("peertreesrc name=v server=%s tree-id=again "
        "client-id=%s local-addresses=" PT_LOCAL " ! fakesink", url, name);
    GstElement *v;

    viewers[i] = pt_node_new_launch (name, vdesc);
    v = gst_bin_get_by_name (GST_BIN (viewers[i]->pipeline), "v");
    g_signal_connect (v, "data-received", G_CALLBACK (count_received), &received[i]);
    gst_object_unref (v);
    /* the tree exists once the first source is up */
    WAIT_UNTIL_MS (server_tree_exists (server, "again"),
        PT_WAIT_MS);
    pt_node_play (viewers[i]);
    WAIT_UNTIL_MS (parent_open (viewers[i]), PT_WAIT_MS);
  }
  WAIT_UNTIL_MS (g_atomic_int_get (&received[1]) >= 20, PT_WAIT_MS);
  g_subprocess_send_signal (first, SIGKILL);
  fail_unless (g_subprocess_wait (first, NULL, NULL));
  WAIT_UNTIL_MS (pt_node_get_message (viewers[0], "peertree-source-lost", 0) != NULL,
      PT_WAIT_MS);
  for (guint i = 0; i < 2; i++)
    before[i] = g_atomic_int_get (&received[i]);

  second = spawn_source (url, file);
  for (guint i = 0; i < 2; i++)
    WAIT_UNTIL_MS (g_atomic_int_get (&received[i]) >= before[i] + 50, PT_WAIT_MS);
  for (guint i = 0; i < 2; i++) {
    fail_unless_equals_uint64 (data_stat (viewers[i], "v", "forged"), 0);
    fail_unless_equals_uint64 (data_stat (viewers[i], "v", "replayed"), 0);
    fail_unless_equals_int (pt_node_count_messages (viewers[i], "peertree-data-rejected"), 0);
    pt_node_assert_no_error (viewers[i]);
  }

  for (guint i = 0; i < 2; i++)
    pt_node_free (viewers[i]);
  g_subprocess_send_signal (second, SIGKILL);
  g_subprocess_wait (second, NULL, NULL);
  g_unlink (file);
}
GST_END_TEST;

static Suite *
data_suite (void)
{
  Suite *s = suite_create ("gst-data");
  TCase *tc = tcase_create ("general");

  pt_gst_tolerate_rtpsession_race ();

  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_data_tree_10000);
  tcase_add_test (tc, test_data_tampering_relay);
  tcase_add_test (tc, test_data_replaying_relay);
  tcase_add_test (tc, test_data_injecting_relay);
  tcase_add_test (tc, test_data_relay_gone);
  tcase_add_test (tc, test_data_pads_with_video);
  tcase_add_test (tc, test_data_lost_beyond_window);
  tcase_add_test (tc, test_data_relay_killed);
  tcase_add_test (tc, test_data_unordered);
  tcase_add_test (tc, test_data_source_restarts);
  suite_add_tcase (s, tc);
  return s;
}

GST_CHECK_MAIN (data);
