/* peertree GStreamer elements — the relay tee and its branches
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-relay.h"
#include "pt-link.h"

#include "common/pt-element-packages.h"

GST_DEBUG_CATEGORY_STATIC (pt_relay_debug);
#define GST_CAT_DEFAULT pt_relay_debug

static void
init_debug (void)
{
  static gsize done;

  if (g_once_init_enter (&done)) {
    GST_DEBUG_CATEGORY_INIT (pt_relay_debug, "ptrelay", 0, "peertree relay tee, keyframe gate and child branches");
    g_once_init_leave (&done, 1);
  }
}

/* A relay child's branch: tee src pad → leaky queue → webrtcbin sink pad.
 * The tee pad is requested only once the link is started, so that the queue's
 * task never meets a flushing (NULL-state) webrtcbin pad. (Linking it later,
 * from webrtcbin's thread when ICE connects, made teardown hit a double free
 * in OpenSSL's per-thread cleanup under ASan in 3 of 6 runs.) */
struct _PtRelayBranch {
  GstElement *tee;
  GstPad *tee_pad;              /* NULL until linked */
  GstElement *queue;
};

/* Relay queue: short and leaky, so a slow or unnegotiated child drops its own
 * stale packets and never stalls its siblings. */
#define PT_RELAY_QUEUE_TIME (50 * GST_MSECOND)
#define PT_RELAY_QUEUE_BYTES (4 * 1024 * 1024)

/* ---------------------------------------------------------------------- */
/* the tee and its keyframe gate (gate: upstream streaming threads) */

GstCaps *
pt_relay_get_tee_caps (GstElement * tee)
{
  g_autoptr (GstPad) sink = gst_element_get_static_pad (tee, "sink");
  g_autoptr (GstPad) peer = NULL;
  GstCaps *caps;

  if (sink == NULL)
    return NULL;
  caps = gst_pad_get_current_caps (sink);
  if (caps)
    return caps;
  /* right after linking, the sticky CAPS event is still on the upstream pad
   * until the first buffer pushes it */
  peer = gst_pad_get_peer (sink);
  return peer ? gst_pad_get_current_caps (peer) : NULL;
}

static GstPadProbeReturn
hold_until_stream_start (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  (void) user_data;
  if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM) {
    GstEvent *event = GST_PAD_PROBE_INFO_EVENT (info);

    if (GST_EVENT_TYPE (event) == GST_EVENT_STREAM_START)
      return GST_PAD_PROBE_REMOVE;      /* passes it, and all that follows */
    if (!GST_EVENT_IS_STICKY (event))
      return GST_PAD_PROBE_OK;  /* flushes */
    GST_DEBUG_OBJECT (pad, "%s before stream-start: dropped (stays pending upstream)",
        GST_EVENT_TYPE_NAME (event));
  }
  return GST_PAD_PROBE_DROP;
}

void
pt_relay_hold_until_stream_start (GstPad * sinkpad)
{
  g_return_if_fail (GST_IS_PAD (sinkpad));

  init_debug ();
  gst_pad_add_probe (sinkpad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM |
      GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST, hold_until_stream_start,
      NULL, NULL);
}

/* Keyframe requests (GstForceKeyUnit, from each child's PLI/FIR) travel up
 * through the tee; one keyframe serves every child, so a request that follows
 * a forwarded one within KEYFRAME_COALESCE_US is dropped. Without this every
 * lost packet in a big subtree becomes its own request at the source. */
#define KEYFRAME_COALESCE_US (250 * G_TIME_SPAN_MILLISECOND)

typedef struct {
  GMutex lock;
  gint64 last;
  guint dropped;
} PtKeyframeGate;

static void
keyframe_gate_free (gpointer data)
{
  PtKeyframeGate *gate = data;
  g_mutex_clear (&gate->lock);
  g_free (gate);
}

static GstPadProbeReturn
on_upstream_event (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  PtKeyframeGate *gate = user_data;
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT (info);
  gboolean pass = TRUE;

  if (GST_EVENT_TYPE (event) != GST_EVENT_CUSTOM_UPSTREAM ||
      !gst_event_has_name (event, "GstForceKeyUnit"))
    return GST_PAD_PROBE_OK;
  gint64 now = g_get_monotonic_time ();
  g_mutex_lock (&gate->lock);
  if (gate->last && now - gate->last < KEYFRAME_COALESCE_US) {
    pass = FALSE;
    gate->dropped++;
  } else {
    gate->last = now;
  }
  g_mutex_unlock (&gate->lock);
  if (!pass)
    GST_LOG_OBJECT (pad, "keyframe request coalesced with one sent %" G_GINT64_FORMAT " us ago",
        now - gate->last);
  return pass ? GST_PAD_PROBE_OK : GST_PAD_PROBE_DROP;
}

GstElement *
pt_relay_make_tee (GstBin * bin, const gchar * name, GstPad * upstream, GError ** error)
{
  GstElement *tee = gst_element_factory_make ("tee", name);
  g_autoptr (GstPad) sink = NULL;

  init_debug ();

  if (tee == NULL) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN,
        "The GStreamer element 'tee' is missing: install the Debian package %s",
        pt_element_package ("tee"));
    return NULL;
  }
  /* a tee with no linked src pad would fail the upstream stream */
  g_object_set (tee, "allow-not-linked", TRUE, NULL);
  if (!gst_bin_add (bin, tee)) {
    gst_object_unref (tee);
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
        "Could not add tee %s", name ? name : "");
    return NULL;
  }
  gst_element_sync_state_with_parent (tee);
  {
    g_autoptr (GstPad) tee_sink = gst_element_get_static_pad (tee, "sink");
    PtKeyframeGate *gate = g_new0 (PtKeyframeGate, 1);
    g_mutex_init (&gate->lock);
    gst_pad_add_probe (tee_sink, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, on_upstream_event, gate,
        keyframe_gate_free);
  }
  if (upstream) {
    sink = gst_element_get_static_pad (tee, "sink");
    if (GST_PAD_LINK_FAILED (gst_pad_link (upstream, sink))) {
      g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
          "Could not link %s:%s to the relay tee", GST_DEBUG_PAD_NAME (upstream));
      pt_element_stop_and_remove (bin, tee);
      return NULL;
    }
  }
  return tee;
}

void
pt_element_stop_and_remove (GstBin * bin, GstElement * element)
{
  g_return_if_fail (GST_IS_BIN (bin));
  g_return_if_fail (GST_IS_ELEMENT (element));

  gst_object_ref (element);
  gst_element_set_locked_state (element, TRUE);
  gst_element_set_state (element, GST_STATE_NULL);
  if (GST_OBJECT_PARENT (element) == GST_OBJECT_CAST (bin))
    gst_bin_remove (bin, element);
  gst_object_unref (element);
}

/* ---------------------------------------------------------------------- */
/* a child's branch (the owner's loop thread, through its PtLink) */

PtRelayBranch *
pt_relay_branch_new (GstBin * bin, GstElement * tee, GstPad * sink, GError ** error)
{
  g_autoptr (GstPad) qsrc = NULL;
  GstElement *queue;
  PtRelayBranch *br;

  queue = gst_element_factory_make ("queue", NULL);
  if (queue == NULL) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN,
        "The GStreamer element 'queue' is missing: install the Debian package %s",
        pt_element_package ("queue"));
    return NULL;
  }
  g_object_set (queue, "leaky", 2 /* downstream: drop the oldest */ ,
      "max-size-buffers", 0, "max-size-bytes", PT_RELAY_QUEUE_BYTES,
      "max-size-time", (guint64) PT_RELAY_QUEUE_TIME, "silent", TRUE, NULL);
  gst_bin_add (bin, queue);
  qsrc = gst_element_get_static_pad (queue, "src");
  if (GST_PAD_LINK_FAILED (gst_pad_link (qsrc, sink))) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
        "Could not link the relay queue to webrtcbin");
    gst_bin_remove (bin, queue);
    return NULL;
  }

  br = g_new0 (PtRelayBranch, 1);
  br->tee = gst_object_ref (tee);
  br->queue = gst_object_ref (queue);
  return br;
}

gboolean
pt_relay_branch_link (PtRelayBranch * br, const gchar * peer_id, GError ** error)
{
  g_autoptr (GstPad) qsink = gst_element_get_static_pad (br->queue, "sink");
  GstPadLinkReturn ret;

  gst_element_sync_state_with_parent (br->queue);
  br->tee_pad = gst_element_request_pad_simple (br->tee, "src_%u");
  if (br->tee_pad == NULL) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_PAD,
        "Could not get a src pad from %s", GST_ELEMENT_NAME (br->tee));
    return FALSE;
  }
  pt_relay_hold_until_stream_start (qsink);
  ret = gst_pad_link (br->tee_pad, qsink);
  if (GST_PAD_LINK_FAILED (ret)) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
        "Could not link %s to the relay queue: %s", GST_ELEMENT_NAME (br->tee),
        gst_pad_link_get_name (ret));
    gst_element_release_request_pad (br->tee, br->tee_pad);
    gst_clear_object (&br->tee_pad);
    return FALSE;
  }
  GST_DEBUG ("link %s: linked %s:%s", peer_id, GST_DEBUG_PAD_NAME (br->tee_pad));
  return TRUE;
}

gboolean
pt_relay_branch_is_linked (PtRelayBranch * br)
{
  return br->tee_pad != NULL;
}


typedef struct {
  GMutex lock;
  GCond cond;
  gboolean done;
  GstPad *peer;
} PtUnlinkData;

static void
pt_unlink_data_clear (gpointer data)
{
  PtUnlinkData *d = data;

  g_mutex_clear (&d->lock);
  g_cond_clear (&d->cond);
  gst_object_unref (d->peer);
}

static void
pt_unlink_data_unref (gpointer data)
{
  g_atomic_rc_box_release_full (data, pt_unlink_data_clear);
}

static GstPadProbeReturn
unlink_when_idle (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  PtUnlinkData *d = user_data;

  (void) info;

  g_mutex_lock (&d->lock);
  if (!d->done) {
    gst_pad_unlink (pad, d->peer);
    d->done = TRUE;
    g_cond_broadcast (&d->cond);
  }
  g_mutex_unlock (&d->lock);
  return GST_PAD_PROBE_REMOVE;
}

void
pt_relay_branch_unlink (PtRelayBranch * br, const gchar * peer_id)
{
  PtUnlinkData *d;
  gint64 deadline;

  if (br->tee_pad == NULL)
    return;

  d = g_atomic_rc_box_new0 (PtUnlinkData);
  g_mutex_init (&d->lock);
  g_cond_init (&d->cond);
  d->peer = gst_element_get_static_pad (br->queue, "sink");

  /* the leaky queue never blocks the tee, so the pad goes idle quickly; the
   * probe runs at once if it is idle already */
  gst_pad_add_probe (br->tee_pad, GST_PAD_PROBE_TYPE_IDLE, unlink_when_idle,
      g_atomic_rc_box_acquire (d), pt_unlink_data_unref);

  deadline = g_get_monotonic_time () + G_TIME_SPAN_SECOND;
  g_mutex_lock (&d->lock);
  while (!d->done)
    if (!g_cond_wait_until (&d->cond, &d->lock, deadline))
      break;
  if (!d->done) {
    GST_WARNING ("link %s: tee pad never went idle, unlinking anyway", peer_id);
    gst_pad_unlink (br->tee_pad, d->peer);
    d->done = TRUE;
  }
  g_mutex_unlock (&d->lock);
  pt_unlink_data_unref (d);

  gst_element_release_request_pad (br->tee, br->tee_pad);
  gst_clear_object (&br->tee_pad);
}

void
pt_relay_branch_free (PtRelayBranch * br, GstBin * bin)
{
  pt_element_stop_and_remove (bin, br->queue);
  gst_object_unref (br->queue);
  gst_object_unref (br->tee);
  g_free (br);
}

/* ---------------------------------------------------------------------- */
/* keyframe on connect (webrtcbin's thread; at a relay, the streaming thread) */

/* The GstForceKeyUnit a child's PLI would produce, for the stream of @pad. */
static GstEvent *
keyframe_request_for (GstPad * pad, GstElement * tee)
{
  g_autoptr (GstCaps) caps = gst_pad_get_current_caps (pad);

  /* a branch whose webrtcbin has not linked its input yet has seen no
   * caps: the tee's are the same stream's */
  if (caps == NULL && tee)
    caps = pt_relay_get_tee_caps (tee);
  const GstStructure *s = caps ? gst_caps_get_structure (caps, 0) : NULL;
  guint ssrc = 0;
  gint pt = 0;

  if (s == NULL || !gst_structure_get_uint (s, "ssrc", &ssrc) ||
      !gst_structure_get_int (s, "payload", &pt))
    return NULL;
  GST_DEBUG_OBJECT (pad, "child connected: keyframe asked for ssrc %08x", ssrc);
  return gst_event_new_custom (GST_EVENT_CUSTOM_UPSTREAM,
      gst_structure_new ("GstForceKeyUnit", "running-time", GST_TYPE_CLOCK_TIME,
          GST_CLOCK_TIME_NONE, "all-headers", G_TYPE_BOOLEAN, TRUE, "count", G_TYPE_UINT, 0,
          "ssrc", G_TYPE_UINT, ssrc, "payload", G_TYPE_UINT, (guint) pt, NULL));
}

/* streaming thread: the next buffer for a child that just connected */
static GstPadProbeReturn
ask_keyframe_on_buffer (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  GstEvent *event = keyframe_request_for (pad, NULL);

  (void) info;
  (void) user_data;
  if (event)
    gst_pad_push_event (pad, event);
  return GST_PAD_PROBE_REMOVE;
}

/* Whether @tee relays what an upstream webrtcbin receives (a viewer's
 * fan-out, fed by a receiver link's relay pad: a pad of no element, see
 * pt_link_get_relay_pad), rather than what this process encodes (the
 * source's, fed by its payloader). */
static gboolean
fanout_fed_by_webrtcbin (GstElement * tee)
{
  g_autoptr (GstPad) sink = gst_element_get_static_pad (tee, "sink");
  g_autoptr (GstPad) peer = sink ? gst_pad_get_peer (sink) : NULL;
  g_autoptr (GstElement) up = peer ? gst_pad_get_parent_element (peer) : NULL;
  GstElementFactory *f = up ? gst_element_get_factory (up) : NULL;

  if (peer && up == NULL)
    return TRUE;
  return f && g_strcmp0 (GST_OBJECT_NAME (f), "webrtcbin") == 0;
}

void
pt_relay_branch_get_pads (PtRelayBranch * br, GstElement ** tee, GstPad ** queue_sink)
{
  *tee = gst_object_ref (br->tee);
  *queue_sink = gst_element_get_static_pad (br->queue, "sink");
}

/* A sender's child is reachable (DTLS done, SRTP keys set): ask upstream for
 * a keyframe of each stream now, instead of waiting for the child to see its
 * first packet through its jitterbuffer and send a PLI back. The request
 * carries the stream's SSRC and payload type, as a child's PLI would, and
 * the tee's keyframe gate applies.
 * At the source the request only reaches the encoder: it is pushed at once,
 * from this (webrtcbin's) thread, and the next frame is a keyframe. At a
 * relay it becomes a PLI of the upstream webrtcbin, which may be sent
 * through OpenSSL from the pushing thread, and OpenSSL's per-thread state
 * must stay in threads that outlive the link (see request_keyframe in
 * gstpeertreesrc.c): there it goes with the stream's next buffer, from the
 * streaming thread. */
void
pt_relay_request_keyframe_on_connect (GstElement * tee, GstPad * qsink)
{
  GstEvent *event = NULL;

  /* at the source, at once (the branch has often seen no caps yet: its
   * webrtcbin links its input only once DTLS is done; then the tee's say
   * which stream); else with the next buffer, as at a relay (waiting for
   * that buffer, a whole frame, was 35 ms of a join in bench/join-time) */
  if (!fanout_fed_by_webrtcbin (tee))
    event = keyframe_request_for (qsink, tee);
  if (event)
    gst_pad_push_event (qsink, event);
  else
    gst_pad_add_probe (qsink, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
        ask_keyframe_on_buffer, NULL, NULL);
}
