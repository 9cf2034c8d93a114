/* peertree — in-process relay test: source → relay → viewers, no server.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Build and run (from the repository root; not wired into meson):
 *
 *   gcc -std=c11 -Wall -Wextra -O1 -g -Igst tests/test-relay-inproc.c gst/pt-link.c \
 *       -o /tmp/test-relay-inproc \
 *       $(pkg-config --cflags --libs gstreamer-1.0 gstreamer-webrtc-1.0 gstreamer-sdp-1.0 nice) \
 *     && /tmp/test-relay-inproc
 *
 * Three GstPipelines in one process, SDP and ICE handed directly between
 * PtLinks, ICE restricted to 127.0.0.1:
 *
 *   source:  videotestsrc is-live ! vp8enc ! rtpvp8pay ! [sender link → relay]
 *   relay:   [receiver link ← source] ! tee ─┬─ queue ! [sender link → viewer1]
 *                                            └─ queue ! [sender link → viewer2]  (joins at 3 s)
 *   viewers: [receiver link ← relay] ! rtpvp8depay ! vp8dec ! fakesink
 *
 * Checks: viewer1 decodes 320x240 frames; the relay contains no decoder and
 * decodes nothing; viewer2, joining late with keyframe-max-dist=10000, gets a
 * frame soon (keyframe request travels viewer2 → relay → source); removing
 * viewer2 leaves viewer1 flowing. Prints timings and per-hop delays.
 * Exit status 0 = all checks passed, 77 = skipped (plugins missing).
 */
#include <stdio.h>
#include <string.h>

#include <gst/gst.h>

#include "pt-link.h"

#define WIDTH 320
#define HEIGHT 240
#define LATE_JOIN_MS 3000
#define REMOVE_MS 5500
#define END_MS 7000
#define SSRC 0x5eed1234u

typedef struct _Viewer Viewer;

/* one tree edge: upstream sender link ↔ downstream receiver link */
typedef struct {
  const gchar *name;
  PtLink *tx;
  PtLink *rx;
} Edge;

struct _Viewer {
  const gchar *name;
  GstElement *pipeline;
  Edge edge;
  gint64 join_time;             /* monotonic µs when its links were created */
  gint64 first_frame;           /* monotonic µs, 0 = none yet */
  gint64 connected_time;
  gint frames;                  /* atomic */
  gint width, height;
  /* delay source payloader → this viewer's webrtcbin src pad */
  gint64 delay_sum, delay_max;
  gint delay_n;
  GArray *delays;               /* gint64 µs, for the median */
};

static struct {
  GMainLoop *loop;
  gint64 t0;
  gboolean failed;
  PtLinkConfig config;

  GstElement *source;
  GstElement *relay;
  Edge up;                      /* source → relay */
  GstElement *tee;              /* relay fan-out, set from a streaming thread */
  GMutex lock;
  gint64 sent_at[65536];        /* per RTP seqnum, monotonic µs at the source */
  gint keyframes;               /* atomic: keyframes out of vp8enc */
  gint relay_packets;           /* atomic */
  gint64 relay_delay_sum, relay_delay_max;
  gint relay_delay_n;
  GArray *relay_delays;

  Viewer v1, v2;
} T;

#define MS(t) ((double) ((t) - T.t0) / 1000.0)

static void
fail (const gchar * fmt, ...) G_GNUC_PRINTF (1, 2);

static void
fail (const gchar * fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  fprintf (stderr, "FAIL: ");
  vfprintf (stderr, fmt, ap);
  fprintf (stderr, "\n");
  va_end (ap);
  T.failed = TRUE;
}

/* ---- edge callbacks: direct "signalling" ---- */

static void
on_local_description (PtLink * link, const gchar * type, const gchar * sdp, gpointer user_data)
{
  Edge *e = user_data;
  PtLink *other = link == e->tx ? e->rx : e->tx;

  printf ("[%8.1f ms] %s: %s %s\n", MS (g_get_monotonic_time ()), e->name,
      link == e->tx ? "sender" : "receiver", type);
  if (other)
    pt_link_set_remote_description (other, type, sdp);
}

static void
on_local_candidate (PtLink * link, guint mline, const gchar * cand, gpointer user_data)
{
  Edge *e = user_data;
  PtLink *other = link == e->tx ? e->rx : e->tx;

  if (other)
    pt_link_add_remote_candidate (other, mline, cand);
}

static void
on_state_changed (PtLink * link, PtLinkState state, gpointer user_data)
{
  Edge *e = user_data;

  printf ("[%8.1f ms] %s: %s %s\n", MS (g_get_monotonic_time ()), e->name,
      link == e->tx ? "sender" : "receiver", pt_link_state_to_string (state));
  if (state == PT_LINK_STATE_FAILED)
    fail ("%s: ICE failed", e->name);
  if (state == PT_LINK_STATE_CONNECTED && link == e->rx) {
    if (e == &T.v1.edge)
      T.v1.connected_time = g_get_monotonic_time ();
    else if (e == &T.v2.edge)
      T.v2.connected_time = g_get_monotonic_time ();
  }
}

static void
on_link_error (PtLink * link, const GError * error, gpointer user_data)
{
  Edge *e = user_data;

  fail ("%s (%s): %s", e->name, pt_link_get_peer_id (link), error->message);
  g_main_loop_quit (T.loop);
}

/* ---- timing probes ---- */

static guint16
rtp_seqnum (GstBuffer * buf, guint32 * ssrc)
{
  GstMapInfo map;
  guint16 seq = 0;

  if (gst_buffer_map (buf, &map, GST_MAP_READ)) {
    if (map.size >= 12) {
      seq = GST_READ_UINT16_BE (map.data + 2);
      if (ssrc)
        *ssrc = GST_READ_UINT32_BE (map.data + 8);
    }
    gst_buffer_unmap (buf, &map);
  }
  return seq;
}

static gboolean
stamp_one (GstBuffer ** buf, guint idx, gpointer user_data)
{
  (void) idx;
  T.sent_at[rtp_seqnum (*buf, NULL)] = *(gint64 *) user_data;
  return TRUE;
}

static GstPadProbeReturn
source_rtp_probe (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  gint64 now = g_get_monotonic_time ();

  (void) pad;
  (void) user_data;
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST)
    gst_buffer_list_foreach (GST_PAD_PROBE_INFO_BUFFER_LIST (info), stamp_one, &now);
  else
    T.sent_at[rtp_seqnum (GST_PAD_PROBE_INFO_BUFFER (info), NULL)] = now;
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
keyframe_probe (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);

  (void) pad;
  (void) user_data;
  if (!GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_DELTA_UNIT)) {
    gint n = g_atomic_int_add (&T.keyframes, 1) + 1;

    printf ("[%8.1f ms] source: keyframe #%d\n", MS (g_get_monotonic_time ()), n);
  }
  return GST_PAD_PROBE_OK;
}

static void
account_delay (GstBuffer * buf, gint64 * sum, gint64 * max, gint * n, GArray * all,
    guint32 * ssrc)
{
  gint64 now = g_get_monotonic_time ();
  gint64 sent = T.sent_at[rtp_seqnum (buf, ssrc)];

  if (sent > 0 && now - sent < G_TIME_SPAN_SECOND) {
    g_mutex_lock (&T.lock);
    *sum += now - sent;
    *max = MAX (*max, now - sent);
    (*n)++;
    {
      gint64 d = now - sent;
      g_array_append_val (all, d);
    }
    g_mutex_unlock (&T.lock);
  }
}

static GstPadProbeReturn
relay_rtp_probe (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  guint32 ssrc = 0;

  (void) pad;
  (void) user_data;
  g_atomic_int_inc (&T.relay_packets);
  account_delay (GST_PAD_PROBE_INFO_BUFFER (info), &T.relay_delay_sum,
      &T.relay_delay_max, &T.relay_delay_n, T.relay_delays, &ssrc);
  if (ssrc != SSRC)
    fail ("relay received SSRC %08x instead of %08x", ssrc, SSRC);
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
viewer_rtp_probe (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  Viewer *v = user_data;
  guint32 ssrc = 0;

  (void) pad;
  account_delay (GST_PAD_PROBE_INFO_BUFFER (info), &v->delay_sum, &v->delay_max,
      &v->delay_n, v->delays, &ssrc);
  if (ssrc != SSRC)
    fail ("%s received SSRC %08x instead of %08x", v->name, ssrc, SSRC);
  return GST_PAD_PROBE_OK;
}

/* ---- viewer ---- */

static void
on_viewer_handoff (GstElement * sink, GstBuffer * buf, GstPad * pad, gpointer user_data)
{
  Viewer *v = user_data;

  (void) sink;
  (void) buf;
  if (g_atomic_int_add (&v->frames, 1) == 0) {
    g_autoptr (GstCaps) caps = gst_pad_get_current_caps (pad);
    GstStructure *s = gst_caps_get_structure (caps, 0);

    v->first_frame = g_get_monotonic_time ();
    gst_structure_get_int (s, "width", &v->width);
    gst_structure_get_int (s, "height", &v->height);
    printf ("[%8.1f ms] %s: first decoded frame %dx%d, %.1f ms after joining\n",
        MS (v->first_frame), v->name, v->width, v->height,
        (v->first_frame - v->join_time) / 1000.0);
  }
}

static void
on_viewer_pad_added (PtLink * link, GstPad * pad, gpointer user_data)
{
  Edge *e = user_data;
  Viewer *v = e == &T.v1.edge ? &T.v1 : &T.v2;
  g_autoptr (GstCaps) caps = gst_pad_get_current_caps (pad);
  GstElement *depay, *dec, *sink;
  g_autoptr (GstPad) sinkpad = NULL;

  (void) link;
  g_autofree gchar *caps_str = caps ? gst_caps_to_string (caps) : NULL;

  printf ("[%8.1f ms] %s: pad %s caps %s\n",
      MS (g_get_monotonic_time ()), v->name, GST_PAD_NAME (pad), caps_str);

  depay = gst_element_factory_make ("rtpvp8depay", NULL);
  dec = gst_element_factory_make ("vp8dec", NULL);
  sink = gst_element_factory_make ("fakesink", NULL);
  g_object_set (depay, "request-keyframe", TRUE, "wait-for-keyframe", TRUE, NULL);
  g_object_set (sink, "signal-handoffs", TRUE, "sync", FALSE, "async", FALSE, NULL);
  g_signal_connect (sink, "handoff", G_CALLBACK (on_viewer_handoff), v);
  gst_bin_add_many (GST_BIN (v->pipeline), depay, dec, sink, NULL);
  gst_element_link_many (depay, dec, sink, NULL);
  gst_element_sync_state_with_parent (sink);
  gst_element_sync_state_with_parent (dec);
  gst_element_sync_state_with_parent (depay);
  sinkpad = gst_element_get_static_pad (depay, "sink");
  if (GST_PAD_LINK_FAILED (gst_pad_link (pad, sinkpad)))
    fail ("%s: could not link the depayloader", v->name);
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, viewer_rtp_probe, v, NULL);
}

static const PtLinkCallbacks edge_callbacks = {
  .local_description = on_local_description,
  .local_candidate = on_local_candidate,
  .state_changed = on_state_changed,
  .error = on_link_error,
};

static gboolean on_bus (GstBus * bus, GstMessage * msg, gpointer user_data);

static GstElement *
new_pipeline (const gchar * name)
{
  GstElement *p = gst_pipeline_new (name);
  g_autoptr (GstBus) bus = gst_pipeline_get_bus (GST_PIPELINE (p));

  gst_bus_add_watch (bus, on_bus, (gpointer) name);
  return p;
}

/* Creates the viewer's pipeline and both ends of the relay → viewer edge. */
static gboolean
start_viewer (Viewer * v)
{
  PtLinkCallbacks rx_cb = edge_callbacks;
  g_autoptr (GError) error = NULL;

  rx_cb.pad_added = on_viewer_pad_added;
  v->join_time = g_get_monotonic_time ();
  printf ("[%8.1f ms] %s: joining\n", MS (v->join_time), v->name);
  v->edge.name = v->name;
  v->pipeline = new_pipeline (v->name);
  gst_element_set_state (v->pipeline, GST_STATE_PLAYING);

  v->edge.rx = pt_link_new (PT_LINK_ROLE_RECEIVER, "relay", GST_BIN (v->pipeline),
      &T.config, &rx_cb, &v->edge, NULL, NULL, &error);
  if (v->edge.rx == NULL)
    goto error;
  pt_link_start (v->edge.rx);

  v->edge.tx = pt_link_new (PT_LINK_ROLE_SENDER, v->name, GST_BIN (T.relay),
      &T.config, &edge_callbacks, &v->edge, NULL, NULL, &error);
  if (v->edge.tx == NULL)
    goto error;
  if (!pt_link_add_relay_stream (v->edge.tx, T.tee, &error))
    goto error;
  pt_link_start (v->edge.tx);
  return TRUE;

error:
  fail ("%s: %s", v->name, error->message);
  g_main_loop_quit (T.loop);
  return FALSE;
}

static void
stop_edge (Edge * e)
{
  if (e->tx) {
    pt_link_close (e->tx);
    g_clear_pointer (&e->tx, pt_link_unref);
  }
  if (e->rx) {
    pt_link_close (e->rx);
    g_clear_pointer (&e->rx, pt_link_unref);
  }
}

/* ---- relay ---- */

static gboolean
relay_ready_cb (gpointer user_data)
{
  (void) user_data;
  start_viewer (&T.v1);
  return G_SOURCE_REMOVE;
}

static void
on_relay_pad_added (PtLink * link, GstPad * pad, gpointer user_data)
{
  g_autoptr (GstCaps) caps = gst_pad_get_current_caps (pad);
  g_autoptr (GError) error = NULL;
  GstElement *tee;

  (void) link;
  (void) user_data;
  g_autofree gchar *caps_str = caps ? gst_caps_to_string (caps) : NULL;

  printf ("[%8.1f ms] relay: pad %s caps %s\n",
      MS (g_get_monotonic_time ()), GST_PAD_NAME (pad), caps_str);
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, relay_rtp_probe, NULL, NULL);
  tee = pt_link_make_fanout (GST_BIN (T.relay), "fanout0", pad, &error);
  if (tee == NULL) {
    fail ("relay: %s", error->message);
    return;
  }
  g_mutex_lock (&T.lock);
  T.tee = tee;
  g_mutex_unlock (&T.lock);
  /* children are created from the main context, not the streaming thread */
  g_idle_add (relay_ready_cb, NULL);
}

static gboolean
late_join_cb (gpointer user_data)
{
  (void) user_data;
  if (T.tee == NULL) {
    fail ("relay has no stream after %d ms", LATE_JOIN_MS);
    g_main_loop_quit (T.loop);
  } else {
    start_viewer (&T.v2);
  }
  return G_SOURCE_REMOVE;
}

static gint remove_frames_v1;

static gboolean
remove_cb (gpointer user_data)
{
  gint64 t = g_get_monotonic_time ();

  (void) user_data;
  remove_frames_v1 = g_atomic_int_get (&T.v1.frames);
  stop_edge (&T.v2.edge);
  gst_element_set_state (T.v2.pipeline, GST_STATE_NULL);
  printf ("[%8.1f ms] viewer2 removed in %.1f ms\n", MS (g_get_monotonic_time ()),
      (g_get_monotonic_time () - t) / 1000.0);
  return G_SOURCE_REMOVE;
}

static gboolean
end_cb (gpointer user_data)
{
  (void) user_data;
  g_main_loop_quit (T.loop);
  return G_SOURCE_REMOVE;
}

static gboolean
on_bus (GstBus * bus, GstMessage * msg, gpointer user_data)
{
  (void) bus;
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    g_autoptr (GError) err = NULL;
    g_autofree gchar *dbg = NULL;

    gst_message_parse_error (msg, &err, &dbg);
    fail ("%s: error from %s: %s (%s)", (const gchar *) user_data,
        GST_OBJECT_NAME (msg->src), err->message, dbg ? dbg : "");
    g_main_loop_quit (T.loop);
  } else if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_WARNING) {
    g_autoptr (GError) err = NULL;

    gst_message_parse_warning (msg, &err, NULL);
    fprintf (stderr, "%s: warning from %s: %s\n", (const gchar *) user_data,
        GST_OBJECT_NAME (msg->src), err->message);
  }
  return G_SOURCE_CONTINUE;
}

/* The relay may only hold webrtcbins (whose internals are RTP plumbing),
 * tees and queues; and nothing anywhere in it may decode video or audio. */
static gboolean
bin_has_decoder (GstBin * bin)
{
  g_autoptr (GstIterator) it = gst_bin_iterate_recurse (bin);
  g_autoptr (GstIterator) top = gst_bin_iterate_elements (bin);
  GValue item = G_VALUE_INIT;
  gboolean found = FALSE;

  while (gst_iterator_next (it, &item) == GST_ITERATOR_OK) {
    GstElement *e = g_value_get_object (&item);
    GstElementFactory *f = gst_element_get_factory (e);
    const gchar *klass = f ? gst_element_factory_get_metadata (f,
        GST_ELEMENT_METADATA_KLASS) : NULL;

    if (klass && strstr (klass, "Decoder") && (strstr (klass, "Video")
            || strstr (klass, "Audio"))) {
      printf ("relay contains %s (%s)\n", GST_ELEMENT_NAME (e), klass);
      found = TRUE;
    }
    g_value_reset (&item);
  }
  while (gst_iterator_next (top, &item) == GST_ITERATOR_OK) {
    GstElement *e = g_value_get_object (&item);
    GstElementFactory *f = gst_element_get_factory (e);
    const gchar *fname = f ? GST_OBJECT_NAME (f) : "?";

    if (g_strcmp0 (fname, "webrtcbin") && g_strcmp0 (fname, "tee")
        && g_strcmp0 (fname, "queue")) {
      printf ("relay contains %s (%s)\n", GST_ELEMENT_NAME (e), fname);
      found = TRUE;
    }
    g_value_reset (&item);
  }
  g_value_unset (&item);
  return found;
}

static gboolean
have_plugins (void)
{
  const gchar *names[] = { "webrtcbin", "nicesrc", "dtlssrtpenc", "videotestsrc",
    "vp8enc", "vp8dec", "rtpvp8pay", "rtpvp8depay", "tee", "queue", "fakesink", NULL
  };

  for (guint i = 0; names[i]; i++) {
    g_autoptr (GstElementFactory) f = gst_element_factory_find (names[i]);

    if (f == NULL) {
      printf ("SKIP: element %s missing\n", names[i]);
      return FALSE;
    }
  }
  return TRUE;
}

static gint
cmp_i64 (gconstpointer a, gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return x < y ? -1 : x > y;
}

static double
median_ms (GArray * a)
{
  if (a->len == 0)
    return -1.0;
  g_array_sort (a, cmp_i64);
  return g_array_index (a, gint64, a->len / 2) / 1000.0;
}

static void
print_viewer (Viewer * v)
{
  printf ("%s: %d frames, %dx%d, connected %.1f ms / first frame %.1f ms after joining; "
      "source→%s RTP delay median %.2f ms avg %.2f ms max %.2f ms (%d pkts)\n",
      v->name, g_atomic_int_get (&v->frames), v->width, v->height,
      v->connected_time ? (v->connected_time - v->join_time) / 1000.0 : -1.0,
      v->first_frame ? (v->first_frame - v->join_time) / 1000.0 : -1.0, v->name,
      median_ms (v->delays), v->delay_n ? v->delay_sum / 1000.0 / v->delay_n : -1.0, v->delay_max / 1000.0,
      v->delay_n);
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  GstElement *src, *caps, *enc, *pay;
  g_autoptr (GstPad) wpad = NULL;
  g_autoptr (GstPad) paysrc = NULL;
  g_autoptr (GstPad) encsrc = NULL;
  g_autoptr (GstCaps) rtp_caps = NULL;
  PtLinkCallbacks relay_rx_cb = edge_callbacks;
  gchar *addrs[] = { (gchar *) "127.0.0.1", NULL };

  gst_init (&argc, &argv);
  if (!have_plugins ())
    return 77;

  g_mutex_init (&T.lock);
  T.loop = g_main_loop_new (NULL, FALSE);
  pt_link_config_init (&T.config);
  T.config.latency_ms = 20;
  T.config.local_addresses = g_strdupv (addrs);
  T.relay_delays = g_array_new (FALSE, FALSE, sizeof (gint64));
  T.v1.delays = g_array_new (FALSE, FALSE, sizeof (gint64));
  T.v2.delays = g_array_new (FALSE, FALSE, sizeof (gint64));
  T.v1.name = "viewer1";
  T.v2.name = "viewer2";
  T.up.name = "source→relay";
  T.t0 = g_get_monotonic_time ();

  /* source */
  T.source = new_pipeline ("source");
  src = gst_element_factory_make ("videotestsrc", NULL);
  caps = gst_element_factory_make ("capsfilter", NULL);
  enc = gst_element_factory_make ("vp8enc", NULL);
  pay = gst_element_factory_make ("rtpvp8pay", NULL);
  g_object_set (src, "is-live", TRUE, "pattern", 18 /* ball */ , NULL);
  {
    g_autoptr (GstCaps) raw = gst_caps_new_simple ("video/x-raw",
        "width", G_TYPE_INT, WIDTH, "height", G_TYPE_INT, HEIGHT,
        "framerate", GST_TYPE_FRACTION, 30, 1, NULL);
    g_object_set (caps, "caps", raw, NULL);
  }
  g_object_set (enc, "keyframe-max-dist", 10000, "deadline", (gint64) 1,
      "lag-in-frames", 0, NULL);
  g_object_set (pay, "pt", 96, "ssrc", SSRC, NULL);
  gst_bin_add_many (GST_BIN (T.source), src, caps, enc, pay, NULL);
  gst_element_link_many (src, caps, enc, pay, NULL);
  encsrc = gst_element_get_static_pad (enc, "src");
  gst_pad_add_probe (encsrc, GST_PAD_PROBE_TYPE_BUFFER, keyframe_probe, NULL, NULL);
  paysrc = gst_element_get_static_pad (pay, "src");
  gst_pad_add_probe (paysrc, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
      source_rtp_probe, NULL, NULL);

  T.up.tx = pt_link_new (PT_LINK_ROLE_SENDER, "relay", GST_BIN (T.source), &T.config,
      &edge_callbacks, &T.up, NULL, NULL, &error);
  g_assert_no_error (error);
  rtp_caps = gst_caps_new_simple ("application/x-rtp",
      "media", G_TYPE_STRING, "video", "encoding-name", G_TYPE_STRING, "VP8",
      "payload", G_TYPE_INT, 96, "clock-rate", G_TYPE_INT, 90000,
      "ssrc", G_TYPE_UINT, SSRC, NULL);
  wpad = pt_link_add_send_stream (T.up.tx, rtp_caps, &error);
  g_assert_no_error (error);
  if (GST_PAD_LINK_FAILED (gst_pad_link (paysrc, wpad)))
    g_error ("could not link the payloader to webrtcbin");

  /* relay */
  T.relay = new_pipeline ("relay");
  relay_rx_cb.pad_added = on_relay_pad_added;
  T.up.rx = pt_link_new (PT_LINK_ROLE_RECEIVER, "source", GST_BIN (T.relay), &T.config,
      &relay_rx_cb, &T.up, NULL, NULL, &error);
  g_assert_no_error (error);

  gst_element_set_state (T.relay, GST_STATE_PLAYING);
  pt_link_start (T.up.rx);
  gst_element_set_state (T.source, GST_STATE_PLAYING);
  pt_link_start (T.up.tx);

  g_timeout_add (LATE_JOIN_MS, late_join_cb, NULL);
  g_timeout_add (REMOVE_MS, remove_cb, NULL);
  g_timeout_add (END_MS, end_cb, NULL);
  g_main_loop_run (T.loop);

  /* ---- checks ---- */
  printf ("\n---- results ----\n");
  print_viewer (&T.v1);
  print_viewer (&T.v2);
  printf ("relay: %d RTP packets in, source→relay delay median %.2f ms avg %.2f ms "
      "max %.2f ms\n", g_atomic_int_get (&T.relay_packets), median_ms (T.relay_delays),
      T.relay_delay_n ? T.relay_delay_sum / 1000.0 / T.relay_delay_n : -1.0,
      T.relay_delay_max / 1000.0);
  printf ("source: %d keyframes\n", g_atomic_int_get (&T.keyframes));

  if (T.v1.frames == 0 || T.v1.width != WIDTH || T.v1.height != HEIGHT)
    fail ("viewer1 did not decode %dx%d frames", WIDTH, HEIGHT);
  if (T.v2.frames == 0)
    fail ("late viewer2 decoded nothing (keyframe request path broken?)");
  else if (T.v2.first_frame - T.v2.join_time > 2 * G_TIME_SPAN_SECOND)
    fail ("late viewer2 waited %.0f ms for its first frame",
        (T.v2.first_frame - T.v2.join_time) / 1000.0);
  if (bin_has_decoder (GST_BIN (T.relay)))
    fail ("the relay decodes or depayloads");
  if (g_atomic_int_get (&T.v1.frames) <= remove_frames_v1 + 10)
    fail ("viewer1 stalled after viewer2 left (%d → %d frames)", remove_frames_v1,
        g_atomic_int_get (&T.v1.frames));

  /* ---- teardown: handlers first, then NULL from this (non-streaming) thread ---- */
  stop_edge (&T.v1.edge);
  stop_edge (&T.v2.edge);
  stop_edge (&T.up);
  gst_element_set_state (T.source, GST_STATE_NULL);
  gst_element_set_state (T.relay, GST_STATE_NULL);
  if (T.v1.pipeline)
    gst_element_set_state (T.v1.pipeline, GST_STATE_NULL);
  if (T.v2.pipeline)
    gst_element_set_state (T.v2.pipeline, GST_STATE_NULL);
  gst_clear_object (&T.source);
  gst_clear_object (&T.relay);
  gst_clear_object (&T.v1.pipeline);
  gst_clear_object (&T.v2.pipeline);
  /* drain pending link events (they see closed links and do nothing) */
  while (g_main_context_iteration (NULL, FALSE));
  pt_link_config_clear (&T.config);
  g_main_loop_unref (T.loop);
  g_array_unref (T.relay_delays);
  g_array_unref (T.v1.delays);
  g_array_unref (T.v2.delays);

  printf ("%s\n", T.failed ? "FAILED" : "PASSED");
  return T.failed ? 1 : 0;
}
