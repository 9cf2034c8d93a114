/* peertreesrc — viewer and relay of a peertree broadcast tree
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Over 1 000 lines because the element's streams are one piece: the pads a
 * parent's link adds, the tees they feed, the decode branch behind each
 * exposed pad, the keyframe requests and the hold for a new source all
 * share PtSrcStream and its generation counter under streams_lock. What is
 * not about the streams lives elsewhere: the signalling in pt-session.c, the
 * parent link and re-parenting in pt-upstream.c, the children in
 * pt-fanout.c, the URI in pt-uri.c. Each section heading names the thread
 * its functions run in.
 */
/**
 * SECTION:element-peertreesrc
 *
 * Joins a tree on a peertree signalling server, receives its streams from
 * the parent the server assigns and relays the RTP, untouched, to up to `k`
 * children (one webrtcbin per child; no decoding, no re-encoding).
 *
 * Each received stream becomes a sometimes pad `video_%u` / `audio_%u`. When
 * it is linked, the element looks at what downstream accepts: raw caps get a
 * depayloader and decoder, anything else (e.g. `fakesink`, a muxer, a
 * parser) gets the depayloaded encoded stream. A relay-only viewer
 * (`peertreesrc ! fakesink`) therefore decodes nothing.
 *
 * |[
 * gst-launch-1.0 peertreesrc uri=peertree://127.0.0.1:8645/demo ! videoconvert ! autovideosink
 * gst-launch-1.0 peertreesrc server=ws://127.0.0.1:8645 tree-id=demo ! fakesink   # relay only
 * ]|
 *
 * Topology (the upstream webrtcbin is replaced when the parent changes; the
 * tees, the children and the local branches stay):
 *
 *   webrtcbin (parent): … ─► jitterbuffer ─► src_N ─► local_N tee ─► queue ─► depayloader [─► decoder ─► convert] ─► video_N / audio_N
 *                                │ relay pad (the packets as they arrive, repaired ones too)
 *                                └─► fanout_N tee ─┬─► queue (leaky) ─► webrtcbin (child A) sink_N
 *                                                  └─► queue (leaky) ─► webrtcbin (child B) sink_N
 *
 * Repair (the `repair` property): each link negotiates NACK and RTX; the
 * jitterbuffer asks the parent again for a lost packet and waits for it up
 * to its latency (`latency`, `latency-mode`), but relaying never waits;
 * each child link answers its child's NACKs from its own cache of what it
 * sent (docs/repair.md).
 *
 * Keyframe requests from children travel upstream as GstForceKeyUnit (with
 * the SSRC, kept unchanged end to end) through the tee to the parent-facing
 * webrtcbin, which sends PLI/FIR to the parent. A parent asks for one itself
 * as soon as a new child's link is up (DTLS done), so a joining viewer's
 * first picture does not wait for its own request.
 *
 * Churn: when the parent goes (the server re-parents us: "upstream-changed";
 * or the upstream ICE state turns failed, or stays disconnected for 2 s, and
 * the element asks for a new parent itself; or the application emits
 * "reconnect-upstream"), only the upstream webrtcbin is replaced: the pads,
 * the children and their links stay, nothing posts EOS or an error, and the
 * timestamps stay on the pipeline's running time. As soon as the new parent's
 * stream flows, a keyframe request goes up, and the keyframe reaches the
 * whole subtree. A stream with another SSRC comes from another source (the
 * source restarted and reclaimed the tree): the children then get new links
 * too, and so on down the tree. While the source is away ("source-lost", the
 * server's grace period) the viewers keep their places and wait; when the
 * tree closes, the streams end with EOS and a peertree-tree-closed message
 * says why. A lost connection to the signalling server changes nothing for
 * the media: the client reconnects and re-registers by itself. *
 * Data: when the tree's source registered a data key (peertreesink data=true),
 * the parent's link carries a data channel. Each message is verified against
 * the source's key and its sequence number before it is delivered (a
 * `data_%u` pad per channel of the source, with the caps it declared, through
 * an appsrc, and the `data-received` signal) and forwarded, byte for byte, to
 * the children. A forged or replayed message is dropped, counted (stats, data
 * field), posted as a warning and peertree-data-rejected, and the parent is
 * reported to the server, which places its children elsewhere. After a
 * re-parenting the new parent resends what this node missed from its window
 * (the last 1024 messages, 4 MiB at most); what is beyond it is counted, posted
 * as peertree-data-lost and signalled (`data-lost`).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif


#ifndef GST_USE_UNSTABLE_API
#define GST_USE_UNSTABLE_API
#endif
#include <gst/webrtc/webrtc.h>

#include "gstpeertreeelements.h"
#include "pt-data.h"
#include "pt-fanout.h"
#include "pt-link.h"
#include "pt-loop.h"
#include "pt-overload.h"
#include "pt-session.h"
#include "pt-settings.h"
#include "pt-upstream.h"
#include "pt-uri.h"
#include "peertree/peertree-client.h"

GST_DEBUG_CATEGORY_STATIC (gst_peer_tree_src_debug);
#define GST_CAT_DEFAULT gst_peer_tree_src_debug

/* the bound of the adaptive latency (deep viewers of long, lossy chains
 * measured repair round trips that 200 ms cut short; a link starts at
 * PT_LINK_ADAPTIVE_LATENCY_START_MS until a repair measured it), and the
 * value of the fixed one */
#define DEFAULT_LATENCY 600
#define DEFAULT_LATENCY_MODE GST_PEER_TREE_LATENCY_ADAPTIVE
#define DEFAULT_REPAIR TRUE
#define DEFAULT_MAX_CHILDREN -1
#define DEFAULT_MAX_UPLOAD_KBPS 0
#define DEFAULT_SHED_OVERLOAD TRUE
#define MAX_MAX_CHILDREN 1000           /* the protocol's PT_MAX_DECLARED_CHILDREN */
#define MAX_UPLOAD_KBPS 100000000       /* the protocol's PT_MAX_UPLOAD_KBPS */

enum {
  PROP_0,
  PROP_URI,
  PROP_SETTINGS,                /* server … turn-server (pt-settings.h) */
  PROP_LATENCY = PROP_SETTINGS + PT_SETTINGS_N_PROPS,
  PROP_LATENCY_MODE,
  PROP_REPAIR,
  PROP_STATS,
  PROP_MAX_CHILDREN,
  PROP_MAX_UPLOAD_KBPS,
  PROP_SHED_OVERLOAD,
};

enum {
  SIGNAL_DATA_RECEIVED,
  SIGNAL_DATA_LOST,
  N_SIGNALS,
};

static guint src_signals[N_SIGNALS];

/* A data_%u pad: one channel of the source's data, from an appsrc. */
typedef struct {
  guint channel;
  GstElement *appsrc;           /* a ref */
  GstPad *ghost;
  gchar *caps;
} PtSrcData;

/* at most this much waits in a data pad's appsrc (then the oldest goes) */
#define DATA_PAD_MAX_BYTES (4 * 1024 * 1024)

GType
gst_peer_tree_latency_mode_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_PEER_TREE_LATENCY_ADAPTIVE, "Follow the parent link: clamp (2 x repair RTT + 150 ms, "
          "150 ms, latency)", "adaptive"},
    {GST_PEER_TREE_LATENCY_FIXED, "Always the latency property", "fixed"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstPeerTreeLatencyMode", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

typedef struct {
  GstPeerTreeSrc *self;         /* not a ref */
  guint mline;
  gboolean is_video;
  GstElement *tee;              /* the relay: packets as they arrive */
  GstElement *local_tee;        /* the local output: after the jitterbuffer */
  GstPad *ghost;                /* exposed src pad */
  GPtrArray *local;             /* local output branch elements */
  gboolean local_built;

  /* streams_lock: what the current upstream link sends */
  guint generation;             /* upstream link generation of the last buffer seen */
  gboolean has_ssrc;
  guint32 ssrc;
  guint pt;
  gint keyframe_wanted;         /* atomic: ask the parent on the next buffer */
  gint frames_out;              /* atomic: buffers out of the src pad (video: frames) */
} PtSrcStream;

struct _GstPeerTreeSrc {
  GstBin parent;

  /* properties, object lock */
  PtSettings settings;
  guint latency;
  GstPeerTreeLatencyMode latency_mode;
  gboolean repair;
  gint max_children;            /* -1: the server's k */
  guint max_upload_kbps;        /* 0: unknown */
  gboolean shed_overload;

  const gchar *missing_element;

  /* streams_lock: shared with streaming threads */
  GMutex streams_lock;
  GPtrArray *streams;           /* PtSrcStream */
  guint next_video, next_audio;
  guint expected_streams;       /* media in the parent's offer */
  gboolean no_more_pads;
  guint generation;             /* +1 per upstream link (and when it closes) */
  guint hold_generation;        /* a new source's stream waits for hold_cb */
  GCond hold_cond;
  PtDataHub *hub;               /* between start and stop */
  GPtrArray *data_pads;         /* PtSrcData */
  gboolean parent_data;         /* the parent link's data channel is there */

  /* the loop thread, the client, the children (pt-session.h); its
   * active_tree is the tree joined */
  PtSession session;

  /* loop thread only */
  PtUpstream *upstream;         /* the parent */
  GPtrArray *renewing;          /* child ids waiting for a new source's streams */
  gboolean holding_children;    /* renewing: until every stream flows again */
  gint64 report_at;             /* the last report's time and video frames out */
  guint report_frames;
  /* overload shedding: a tick a second while started */
  PtOverload *overload;
  GSource *overload_timer;
  gconstpointer parent_link;    /* the upstream link the counts below are of */
  guint64 parent_lost, parent_received;
  gboolean have_parent_counts;
};

static GstStaticPadTemplate video_template = GST_STATIC_PAD_TEMPLATE ("video_%u",
    GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS_ANY);
static GstStaticPadTemplate audio_template = GST_STATIC_PAD_TEMPLATE ("audio_%u",
    GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS_ANY);
static GstStaticPadTemplate data_template = GST_STATIC_PAD_TEMPLATE ("data_%u",
    GST_PAD_SRC, GST_PAD_SOMETIMES, GST_STATIC_CAPS_ANY);

static void gst_peer_tree_src_uri_handler_init (gpointer iface, gpointer iface_data);

#define gst_peer_tree_src_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE (GstPeerTreeSrc, gst_peer_tree_src, GST_TYPE_BIN,
    G_IMPLEMENT_INTERFACE (GST_TYPE_URI_HANDLER, gst_peer_tree_src_uri_handler_init));
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (peertreesrc, "peertreesrc", GST_RANK_NONE,
    GST_TYPE_PEER_TREE_SRC,
    GST_DEBUG_CATEGORY_INIT (gst_peer_tree_src_debug, "peertreesrc", 0,
        "peertree viewer/relay element"));

static void check_streams_ready (GstPeerTreeSrc * self);

/* ---------------------------------------------------------------------- */
/* local output (streaming or application thread) */

static GstElement *
add_local (GstPeerTreeSrc * self, PtSrcStream * st, GstElement * e)
{
  if (e == NULL)
    return NULL;
  gst_bin_add (GST_BIN (self), e);
  g_ptr_array_add (st->local, gst_object_ref (e));
  return e;
}

/* GstRTPBaseDepayload (1.22 and later) flags a buffer DISCONT on a sequence
 * gap with `in = gst_buffer_make_writable (in)`, then unmaps its RTP view of
 * the old buffer, to which it no longer holds a reference. A buffer from the
 * fan-out tee is shared with every child's branch: when those drop it first,
 * the depayloader touches a freed buffer (gst_buffer_unmap CRITICAL, a
 * use-after-free). Gaps are routine here (the leaky queue, a new parent), so
 * the depayloader is handed buffers of its own: a shallow copy (metadata
 * only, the packet memory stays shared). */
static GstPadProbeReturn
own_buffers_for_depayloader (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  (void) pad;
  (void) data;
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);

    if (!gst_buffer_is_writable (buf))
      info->data = gst_buffer_make_writable (buf);
  } else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    GstBufferList *list = gst_buffer_list_make_writable (GST_PAD_PROBE_INFO_BUFFER_LIST (info));

    for (guint i = 0; i < gst_buffer_list_length (list); i++)
      gst_buffer_list_get_writable (list, i);
    info->data = list;
  }
  return GST_PAD_PROBE_OK;
}

/* Builds tee → queue → depayloader [→ decoder → convert] and targets the
 * ghost pad at its end. @want_raw: downstream accepts only raw media.
 * Called with streams_lock. */
static gboolean
build_local_branch (GstPeerTreeSrc * self, PtSrcStream * st, gboolean want_raw,
    GError ** error)
{
  g_autoptr (GstCaps) rtp_caps = pt_relay_get_tee_caps (st->local_tee);
  GstElement *queue, *depay, *last;
  g_autoptr (GstPad) teesrc = NULL;
  g_autoptr (GstPad) qsink = NULL;
  g_autoptr (GstPad) out = NULL;

  if (rtp_caps == NULL) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION, "stream has no caps");
    return FALSE;
  }
  queue = add_local (self, st, gst_element_factory_make ("queue", NULL));
  depay = add_local (self, st, pt_make_element_for_caps (GST_ELEMENT_FACTORY_TYPE_DEPAYLOADER,
          GST_PAD_SINK, rtp_caps));
  if (queue == NULL || depay == NULL) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN,
        "No RTP depayloader for %s", gst_structure_get_string (
            gst_caps_get_structure (rtp_caps, 0), "encoding-name"));
    return FALSE;
  }
  /* the local branch must never hold back the relay */
  g_object_set (queue, "leaky", 2, "max-size-buffers", 0, "max-size-bytes", 0,
      "max-size-time", (guint64) (200 * GST_MSECOND), NULL);
  if (g_object_class_find_property (G_OBJECT_GET_CLASS (depay), "request-keyframe"))
    g_object_set (depay, "request-keyframe", TRUE, NULL);
  if (g_object_class_find_property (G_OBJECT_GET_CLASS (depay), "wait-for-keyframe"))
    g_object_set (depay, "wait-for-keyframe", TRUE, NULL);
  gst_element_link (queue, depay);
  {
    g_autoptr (GstPad) dsink = gst_element_get_static_pad (depay, "sink");

    gst_pad_add_probe (dsink, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
        own_buffers_for_depayloader, NULL, NULL);
  }
  last = depay;

  {
    /* a parser completes the caps (e.g. H.264 profile, which openh264dec
     * requires) for decoders and muxers alike; VP8 has none */
    g_autoptr (GstPad) dsrc = gst_element_get_static_pad (depay, "src");
    g_autoptr (GstCaps) enc_caps = gst_pad_get_pad_template_caps (dsrc);
    GstElement *parse = pt_make_element_for_caps (GST_ELEMENT_FACTORY_TYPE_PARSER,
        GST_PAD_SINK, enc_caps);

    if (parse) {
      add_local (self, st, parse);
      if (!gst_element_link (depay, parse)) {
        g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
            "Could not link %s to %s", GST_ELEMENT_NAME (depay), GST_ELEMENT_NAME (parse));
        return FALSE;
      }
      last = parse;
    }
  }

  if (want_raw) {
    g_autoptr (GstPad) dsrc = gst_element_get_static_pad (last, "src");
    g_autoptr (GstCaps) enc_caps = gst_pad_get_pad_template_caps (dsrc);
    GstElement *dec = add_local (self, st,
        pt_make_element_for_caps (GST_ELEMENT_FACTORY_TYPE_DECODER, GST_PAD_SINK, enc_caps));
    GstElement *conv = add_local (self, st, gst_element_factory_make (st->is_video ?
            "videoconvert" : "audioconvert", NULL));

    if (dec == NULL || conv == NULL) {
      g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN,
          "No decoder for %" GST_PTR_FORMAT, enc_caps);
      return FALSE;
    }
    /* Opus: rebuild a lost packet from the next one's in-band FEC */
    if (g_object_class_find_property (G_OBJECT_GET_CLASS (dec), "use-inband-fec"))
      g_object_set (dec, "use-inband-fec", TRUE, NULL);
    gst_element_link_many (last, dec, conv, NULL);
    last = conv;
    if (!st->is_video) {
      GstElement *res = add_local (self, st, gst_element_factory_make ("audioresample", NULL));

      if (res) {
        gst_element_link (conv, res);
        last = res;
      }
    }
  }

  out = gst_element_get_static_pad (last, "src");
  gst_ghost_pad_set_target (GST_GHOST_PAD (st->ghost), out);
  for (guint i = st->local->len; i > 0; i--)
    gst_element_sync_state_with_parent (g_ptr_array_index (st->local, i - 1));

  teesrc = gst_element_request_pad_simple (st->local_tee, "src_%u");
  qsink = gst_element_get_static_pad (queue, "sink");
  pt_relay_hold_until_stream_start (qsink);
  if (GST_PAD_LINK_FAILED (gst_pad_link (teesrc, qsink))) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
        "Could not link the local output");
    return FALSE;
  }
  GST_INFO_OBJECT (self, "%s: local output is %s", GST_PAD_NAME (st->ghost),
      want_raw ? "decoded" : "encoded");
  return TRUE;
}

/* Our exposed pad got linked: decide raw or encoded from what the peer
 * accepts. ANY (fakesink) or encoded caps → encoded; only raw → decode. */
static void
on_ghost_linked (GstPad * pad, GstPad * peer, gpointer user_data)
{
  PtSrcStream *st = user_data;
  GstPeerTreeSrc *self = st->self;
  g_autoptr (GstCaps) peer_caps = gst_pad_query_caps (peer, NULL);
  g_autoptr (GError) error = NULL;
  gboolean want_raw = FALSE, ok = TRUE;

  (void) pad;
  if (peer_caps && !gst_caps_is_any (peer_caps)) {
    g_autoptr (GstCaps) raw = gst_caps_from_string (st->is_video ?
        "video/x-raw(ANY)" : "audio/x-raw(ANY)");

    want_raw = gst_caps_is_subset (peer_caps, raw);
  }

  g_mutex_lock (&self->streams_lock);
  if (!st->local_built) {
    st->local_built = TRUE;
    ok = build_local_branch (self, st, want_raw, &error);
  }
  g_mutex_unlock (&self->streams_lock);
  if (!ok)
    GST_ELEMENT_ERROR (self, CORE, MISSING_PLUGIN,
        ("Cannot output the received %s stream: %s", st->is_video ? "video" : "audio",
            error->message), (NULL));
}

/* ---------------------------------------------------------------------- */
/* streams from the parent (streaming threads: the upstream link's
 * pad-added, its first buffers, the tee's buffers) */

/* defined below: the loop thread's callbacks, the tee's probe */
static gboolean streams_ready_cb (gpointer data);
static gboolean upstream_flowing_cb (gpointer data);
static gboolean hold_cb (gpointer data);
static GstPadProbeReturn on_tee_buffer (GstPad * pad, GstPadProbeInfo * info,
    gpointer data);

typedef struct {
  GstPeerTreeSrc *self;         /* a ref */
  PtSrcStream *st;
  guint generation;
} PtFlowing;

static void
pt_flowing_free (gpointer data)
{
  PtFlowing *f = data;

  gst_object_unref (f->self);
  g_free (f);
}

/* Whether @f still belongs to the current upstream link (no re-parenting
 * since it was made). */
static gboolean
flowing_is_current (PtFlowing * f)
{
  gboolean current;

  g_mutex_lock (&f->self->streams_lock);
  current = f->generation == f->self->generation;
  g_mutex_unlock (&f->self->streams_lock);
  return current;
}

/* First buffer from an upstream link's relay pad (streaming thread; its
 * sticky events, the new caps among them, have reached the relay tee, so
 * children's links made from now on take them): note the stream's SSRC and
 * let the loop request a keyframe (and start the links of children held for
 * a new source). */
static GstPadProbeReturn
on_first_upstream_buffer (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  PtFlowing *f = data;
  GstPeerTreeSrc *self = f->self;
  PtSrcStream *st = f->st;
  g_autoptr (GstCaps) caps = gst_pad_get_current_caps (pad);
  const GstStructure *s = caps ? gst_caps_get_structure (caps, 0) : NULL;
  guint ssrc = 0, pt = 0;
  gboolean current;

  (void) info;
  if (s) {
    gint payload = 0;

    gst_structure_get_uint (s, "ssrc", &ssrc);
    if (gst_structure_get_int (s, "payload", &payload))
      pt = (guint) payload;
  }
  g_mutex_lock (&self->streams_lock);
  current = f->generation == self->generation;
  if (current && s) {
    st->has_ssrc = TRUE;
    st->ssrc = ssrc;
    st->pt = pt;
    st->generation = f->generation;
  }
  g_mutex_unlock (&self->streams_lock);

  if (current) {
    PtFlowing *copy = g_new0 (PtFlowing, 1);

    copy->self = gst_object_ref (self);
    copy->st = st;
    copy->generation = f->generation;
    pt_session_invoke (&self->session, upstream_flowing_cb, copy, pt_flowing_free);
  }
  return GST_PAD_PROBE_REMOVE;
}

/* A new upstream pad of @st with another SSRC (streaming thread, in
 * pad-added, with streams_lock): the stream comes from another source (a
 * restarted one: new SSRC, new sequence numbers, new timestamps). The
 * children's links can take neither its caps (their downstream caps query
 * would fail the new stream with not-negotiated) nor its packets (SRTP
 * state): wait until the loop has closed them (or until the upstream link
 * is being replaced: pt_upstream_close must never wait for this thread).
 * They get new links once the new stream flows (upstream_flowing). */
static void
hold_for_new_source (GstPeerTreeSrc * self)
{
  guint generation = self->generation;
  gint64 deadline;

  self->hold_generation = generation;
  if (!pt_session_invoke (&self->session, hold_cb, gst_object_ref (self), gst_object_unref))
    self->hold_generation = 0;
  /* bounded: never hang a streaming thread on a busy loop */
  deadline = g_get_monotonic_time () + 5 * G_TIME_SPAN_SECOND;
  while (self->hold_generation == generation && self->generation == generation)
    if (!g_cond_wait_until (&self->hold_cond, &self->streams_lock, deadline))
      break;
}

/* Counts what leaves a video src pad (a frame per buffer, decoded or not),
 * for the periodic report's frames per second. */
static GstPadProbeReturn
on_frame_out (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  PtSrcStream *st = user_data;
  guint n = 1;

  if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_BUFFER_LIST)
    n = gst_buffer_list_length (GST_PAD_PROBE_INFO_BUFFER_LIST (info));
  g_atomic_int_add (&st->frames_out, (gint) n);
  return GST_PAD_PROBE_OK;
}

/* A webrtcbin src pad's caps: a ghost pad has none before the first buffer,
 * its innermost target (rtpbin's demuxer) has. (transfer full) (nullable) */
static GstCaps *
get_pad_caps (GstPad * pad)
{
  GstPad *p = gst_object_ref (pad);
  GstCaps *caps = gst_pad_get_current_caps (p);

  while (caps == NULL && GST_IS_GHOST_PAD (p)) {
    GstPad *target = gst_ghost_pad_get_target (GST_GHOST_PAD (p));

    gst_object_unref (p);
    p = target;
    if (p == NULL)
      return NULL;
    caps = gst_pad_get_current_caps (p);
  }
  gst_object_unref (p);
  return caps;
}

/* called with streams_lock */
static void
watch_first_buffer (GstPeerTreeSrc * self, PtSrcStream * st, GstPad * pad)
{
  PtFlowing *f = g_new0 (PtFlowing, 1);

  f->self = gst_object_ref (self);
  f->st = st;
  f->generation = self->generation;
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_first_upstream_buffer, f,
      pt_flowing_free);
}

/* Links @upstream (nullable) to @tee's sink pad in place of its current
 * peer. Called with streams_lock. */
static void
relink_tee (GstPeerTreeSrc * self, GstElement * tee, GstPad * upstream)
{
  g_autoptr (GstPad) teesink = gst_element_get_static_pad (tee, "sink");
  g_autoptr (GstPad) old = gst_pad_get_peer (teesink);

  if (old)
    gst_pad_unlink (old, teesink);
  if (upstream && GST_PAD_LINK_FAILED (gst_pad_link (upstream, teesink)))
    GST_WARNING_OBJECT (self, "could not link %s:%s to %s", GST_DEBUG_PAD_NAME (upstream),
        GST_ELEMENT_NAME (tee));
}

/* PtUpstreamCallbacks.pad_added: @pad (after the jitterbuffer) feeds the
 * local output, the link's relay pad (before it) the children. */
static void
on_upstream_pad (GstElement * element, PtLink * link, GstPad * pad)
{
  GstPeerTreeSrc *self = GST_PEER_TREE_SRC (element);
  g_autoptr (GstWebRTCRTPTransceiver) trans = NULL;
  g_autoptr (GstCaps) caps = get_pad_caps (pad);
  g_autoptr (GstPad) relay = pt_link_get_relay_pad (link, pad);
  g_autoptr (GError) error = NULL;
  PtSrcStream *st = NULL;
  guint mline = G_MAXUINT;
  gboolean expose = FALSE, all = FALSE;
  GstPad *ghost = NULL;

  g_object_get (pad, "transceiver", &trans, NULL);
  if (trans)
    g_object_get (trans, "mlineindex", &mline, NULL);
  if (relay == NULL)
    GST_ELEMENT_WARNING (self, STREAM, FAILED, ("A received stream cannot be relayed."),
        ("no relay pad for %s:%s", GST_DEBUG_PAD_NAME (pad)));

  g_mutex_lock (&self->streams_lock);
  for (guint i = 0; i < self->streams->len; i++) {
    PtSrcStream *s = g_ptr_array_index (self->streams, i);

    if (s->mline == mline)
      st = s;
  }
  if (st) {
    /* new parent, same stream (same SSRC end to end): children and local
     * output keep their branches */
    guint ssrc;

    GST_INFO_OBJECT (self, "stream %u now from %s: %" GST_PTR_FORMAT, mline,
        pt_link_get_peer_id (link), caps);
    if (caps && gst_structure_get_uint (gst_caps_get_structure (caps, 0), "ssrc", &ssrc)
        && st->has_ssrc && ssrc != st->ssrc) {
      GST_INFO_OBJECT (self, "stream %u: new SSRC %08x (was %08x): a new source", mline,
          ssrc, st->ssrc);
      hold_for_new_source (self);
    }
    watch_first_buffer (self, st, relay ? relay : pad);
    relink_tee (self, st->local_tee, pad);
    relink_tee (self, st->tee, relay);
    g_mutex_unlock (&self->streams_lock);
    return;
  }

  st = g_new0 (PtSrcStream, 1);
  st->self = self;
  st->mline = mline;
  st->local = g_ptr_array_new_with_free_func (gst_object_unref);
  {
    const GstStructure *s = caps ? gst_caps_get_structure (caps, 0) : NULL;
    const gchar *media = s ? gst_structure_get_string (s, "media") : NULL;
    g_autofree gchar *tee_name = g_strdup_printf ("fanout_%u", mline);
    g_autofree gchar *local_name = g_strdup_printf ("local_%u", mline);

    st->is_video = g_strcmp0 (media, "audio") != 0;
    /* with nothing linked yet, the local tee still takes the
     * jitterbuffer's output (allow-not-linked): it keeps running and
     * sending this node's NACKs */
    st->local_tee = pt_relay_make_tee (GST_BIN (self), local_name, pad, &error);
    if (st->local_tee)
      st->tee = pt_relay_make_tee (GST_BIN (self), tee_name, relay, &error);
  }
  if (st->tee) {
    g_autoptr (GstPad) teesink = gst_element_get_static_pad (st->tee, "sink");

    gst_pad_add_probe (teesink, GST_PAD_PROBE_TYPE_BUFFER, on_tee_buffer, st, NULL);
  }
  if (st->tee == NULL) {
    g_mutex_unlock (&self->streams_lock);
    GST_ELEMENT_ERROR (self, CORE, PAD, ("Cannot relay the received stream"),
        ("%s", error->message));
    if (st->local_tee)
      pt_element_stop_and_remove (GST_BIN (self), st->local_tee);
    g_ptr_array_unref (st->local);
    g_free (st);
    return;
  }
  {
    g_autofree gchar *name = g_strdup_printf (st->is_video ? "video_%u" : "audio_%u",
        st->is_video ? self->next_video++ : self->next_audio++);
    GstPadTemplate *templ = gst_element_class_get_pad_template (
        GST_ELEMENT_GET_CLASS (self), st->is_video ? "video_%u" : "audio_%u");

    st->ghost = ghost = gst_ghost_pad_new_no_target_from_template (name, templ);
  }
  g_signal_connect (st->ghost, "linked", G_CALLBACK (on_ghost_linked), st);
  if (st->is_video)
    gst_pad_add_probe (st->ghost, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
        on_frame_out, st, NULL);
  watch_first_buffer (self, st, relay ? relay : pad);
  g_ptr_array_add (self->streams, st);
  expose = TRUE;
  all = self->expected_streams > 0 && self->streams->len >= self->expected_streams
      && !self->no_more_pads;
  if (all)
    self->no_more_pads = TRUE;
  g_mutex_unlock (&self->streams_lock);

  if (expose) {
    gst_pad_set_active (ghost, TRUE);
    gst_element_add_pad (GST_ELEMENT (self), ghost);
  }
  if (all)
    gst_element_no_more_pads (GST_ELEMENT (self));

  pt_session_invoke (&self->session, streams_ready_cb, gst_object_ref (self),
      gst_object_unref);
}

/* A buffer enters the tee: sends the keyframe request request_keyframe()
 * asked for. */
static GstPadProbeReturn
on_tee_buffer (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  PtSrcStream *st = data;
  GstStructure *s;
  guint ssrc, pt;

  (void) info;
  if (!g_atomic_int_compare_and_exchange (&st->keyframe_wanted, 1, 0))
    return GST_PAD_PROBE_OK;
  g_mutex_lock (&st->self->streams_lock);
  ssrc = st->ssrc;
  pt = st->pt;
  g_mutex_unlock (&st->self->streams_lock);
  s = gst_structure_new ("GstForceKeyUnit", "running-time", GST_TYPE_CLOCK_TIME,
      GST_CLOCK_TIME_NONE, "all-headers", G_TYPE_BOOLEAN, TRUE, "count", G_TYPE_UINT, 0,
      "ssrc", G_TYPE_UINT, ssrc, "payload", G_TYPE_UINT, pt, NULL);
  GST_DEBUG_OBJECT (st->self, "keyframe request for stream %u (ssrc %08x)", st->mline, ssrc);
  gst_pad_push_event (pad, gst_event_new_custom (GST_EVENT_CUSTOM_UPSTREAM, s));
  return GST_PAD_PROBE_OK;
}

/* ---------------------------------------------------------------------- */
/* streams from the parent, and children held for a new source (loop
 * thread) */

static void upstream_flowing (GstPeerTreeSrc * self, PtSrcStream * st);
static void hold_children (GstPeerTreeSrc * self);

static gboolean
streams_ready_cb (gpointer data)
{
  check_streams_ready (GST_PEER_TREE_SRC (data));
  return G_SOURCE_REMOVE;
}

static gboolean
upstream_flowing_cb (gpointer data)
{
  PtFlowing *f = data;

  if (flowing_is_current (f))
    upstream_flowing (f->self, f->st);
  return G_SOURCE_REMOVE;
}

static gboolean
hold_cb (gpointer data)
{
  GstPeerTreeSrc *self = data;
  gboolean current;

  g_mutex_lock (&self->streams_lock);
  current = self->hold_generation == self->generation;
  g_mutex_unlock (&self->streams_lock);
  if (current)
    hold_children (self);
  g_mutex_lock (&self->streams_lock);
  self->hold_generation = 0;
  g_cond_broadcast (&self->hold_cond);
  g_mutex_unlock (&self->streams_lock);
  return G_SOURCE_REMOVE;
}


/* PtUpstreamCallbacks.link_changed: the buffers of the old link are no
 * longer the current ones; releases a streaming thread of the old link
 * waiting in hold_for_new_source */
static void
on_upstream_link_changed (GstElement * element)
{
  GstPeerTreeSrc *self = GST_PEER_TREE_SRC (element);

  g_mutex_lock (&self->streams_lock);
  self->generation++;
  self->parent_data = FALSE;
  g_cond_broadcast (&self->hold_cond);
  g_mutex_unlock (&self->streams_lock);
  if (self->hub)
    pt_data_hub_set_parent (self->hub, NULL, NULL);
}

/* a webrtcbin thread: the parent's data channel */
static void
on_upstream_data_channel (GstElement * element, PtLink * link, GstWebRTCDataChannel * channel)
{
  GstPeerTreeSrc *self = GST_PEER_TREE_SRC (element);

  if (self->hub == NULL)
    return;
  pt_data_hub_set_parent (self->hub, pt_link_get_peer_id (link), channel);
  g_mutex_lock (&self->streams_lock);
  self->parent_data = TRUE;
  g_mutex_unlock (&self->streams_lock);
  /* a tree of data alone: the children can have their links now */
  pt_session_invoke (&self->session, streams_ready_cb, gst_object_ref (self),
      gst_object_unref);
}

static const PtUpstreamCallbacks upstream_callbacks = {
  .pad_added = on_upstream_pad,
  .link_changed = on_upstream_link_changed,
  .data_channel = on_upstream_data_channel,
};

/* ---------------------------------------------------------------------- */
/* data (the parent data channel's thread, through the hub) */

/* with streams_lock */
static PtSrcData *
data_pad_for (GstPeerTreeSrc * self, guint channel, const gchar * caps, gboolean * added)
{
  PtSrcData *d;
  g_autofree gchar *name = NULL;
  g_autoptr (GstPad) src = NULL;
  g_autoptr (GstCaps) c = NULL;

  *added = FALSE;
  for (guint i = 0; i < self->data_pads->len; i++) {
    d = g_ptr_array_index (self->data_pads, i);
    if (d->channel == channel) {
      if (g_strcmp0 (d->caps, caps) != 0 && (c = gst_caps_from_string (caps))) {
        g_free (d->caps);
        d->caps = g_strdup (caps);
        g_object_set (d->appsrc, "caps", c, NULL);
      }
      return d;
    }
  }
  c = gst_caps_from_string (caps);
  if (c == NULL) {
    GST_WARNING_OBJECT (self, "data channel %u declares caps that do not parse: %s", channel,
        caps);
    return NULL;
  }
  d = g_new0 (PtSrcData, 1);
  d->channel = channel;
  d->caps = g_strdup (caps);
  name = g_strdup_printf ("data_%u", channel);
  d->appsrc = gst_element_factory_make ("appsrc", NULL);
  if (d->appsrc == NULL) {
    g_free (d->caps);
    g_free (d);
    GST_ELEMENT_WARNING (self, CORE, MISSING_PLUGIN,
        ("appsrc is missing (install gstreamer1.0-plugins-base): no data pad."), (NULL));
    return NULL;
  }
  gst_object_ref (d->appsrc);
  /* live, timestamps as the source gave them; a reader that stalls loses the
   * oldest messages, never the tree's */
  g_object_set (d->appsrc, "caps", c, "format", GST_FORMAT_TIME, "is-live", TRUE,
      "max-bytes", (guint64) DATA_PAD_MAX_BYTES, "block", FALSE, NULL);
  gst_util_set_object_arg (G_OBJECT (d->appsrc), "leaky-type", "downstream");
  gst_bin_add (GST_BIN (self), d->appsrc);
  src = gst_element_get_static_pad (d->appsrc, "src");
  d->ghost = gst_ghost_pad_new_from_template (name, src,
      gst_element_class_get_pad_template (GST_ELEMENT_GET_CLASS (self), "data_%u"));
  gst_pad_set_active (d->ghost, TRUE);
  g_ptr_array_add (self->data_pads, d);
  *added = TRUE;
  return d;
}

static void
on_data (gpointer user_data, guint64 seq, guint channel, const gchar * caps,
    GstClockTime pts, GBytes * payload)
{
  GstPeerTreeSrc *self = user_data;
  GstElement *appsrc = NULL;
  GstPad *ghost = NULL;
  gboolean added = FALSE;

  g_signal_emit (self, src_signals[SIGNAL_DATA_RECEIVED], 0, payload, seq, channel);
  if (channel == PT_DATA_SIGNAL_CHANNEL)
    return;
  g_mutex_lock (&self->streams_lock);
  if (self->data_pads) {
    PtSrcData *d = data_pad_for (self, channel, caps, &added);

    if (d) {
      appsrc = gst_object_ref (d->appsrc);
      ghost = added ? gst_object_ref (d->ghost) : NULL;
    }
  }
  g_mutex_unlock (&self->streams_lock);
  if (appsrc == NULL)
    return;
  if (ghost) {
    gst_element_sync_state_with_parent (appsrc);
    gst_element_add_pad (GST_ELEMENT (self), ghost);
    gst_object_unref (ghost);
  }
  {
    GstBuffer *buf = gst_buffer_new_wrapped_bytes (payload);
    GstFlowReturn ret;

    GST_BUFFER_PTS (buf) = pts;
    GST_BUFFER_OFFSET (buf) = seq;
    g_signal_emit_by_name (appsrc, "push-buffer", buf, &ret);
    gst_buffer_unref (buf);
  }
  gst_object_unref (appsrc);
}

static void
on_data_lost (gpointer user_data, guint64 seq, guint64 count)
{
  GstPeerTreeSrc *self = user_data;

  GST_WARNING_OBJECT (self, "%" G_GUINT64_FORMAT " data messages lost before %"
      G_GUINT64_FORMAT, count, seq);
  pt_post_element_message (GST_ELEMENT (self), PT_MESSAGE_DATA_LOST,
      "seq", G_TYPE_UINT64, seq, "count", G_TYPE_UINT64, count, NULL);
  g_signal_emit (self, src_signals[SIGNAL_DATA_LOST], 0, seq, count);
}

typedef struct {
  GstPeerTreeSrc *self;         /* a ref */
  gchar *parent_id;
  const gchar *reason;          /* static */
} PtReport;

static void
pt_report_free (gpointer data)
{
  PtReport *r = data;

  gst_object_unref (r->self);
  g_free (r->parent_id);
  g_free (r);
}

static void
on_reported (GObject * source, GAsyncResult * res, gpointer data)
{
  g_autoptr (GError) error = NULL;

  (void) data;
  if (!peer_tree_client_finish (PEER_TREE_CLIENT (source), res, NULL, &error))
    GST_WARNING ("report-relay: %s", error->message);
}

/* loop thread: tell the server; it places us (and our siblings) elsewhere */
static gboolean
report_parent_cb (gpointer data)
{
  PtReport *r = data;
  GstPeerTreeSrc *self = r->self;

  if (self->session.client && self->session.active_tree)
    peer_tree_client_report_relay_async (self->session.client, self->session.active_tree,
        r->parent_id, r->reason, NULL, on_reported, NULL);
  return G_SOURCE_REMOVE;
}

static void
on_data_rejected (gpointer user_data, const gchar * parent_id, const gchar * reason,
    const gchar * detail)
{
  GstPeerTreeSrc *self = user_data;
  PtReport *r = g_new0 (PtReport, 1);

  GST_ELEMENT_WARNING (self, STREAM, DECRYPT,
      ("The parent peer %s relayed %s data: dropped, and reported to the server.",
          parent_id, reason), ("%s", detail));
  pt_post_element_message (GST_ELEMENT (self), PT_MESSAGE_DATA_REJECTED,
      "parent-id", G_TYPE_STRING, parent_id, "reason", G_TYPE_STRING, reason,
      "detail", G_TYPE_STRING, detail, NULL);
  r->self = gst_object_ref (self);
  r->parent_id = g_strdup (parent_id);
  r->reason = g_str_equal (reason, "forged") ? "forged" : "replayed";
  pt_session_invoke (&self->session, report_parent_cb, r, pt_report_free);
}

static const PtDataCallbacks data_callbacks = {
  .deliver = on_data,
  .lost = on_data_lost,
  .rejected = on_data_rejected,
};

/* loop thread: the tree's key, if its source registered one; the children
 * made from now on get a data channel */
static void
take_data_key (GstPeerTreeSrc * self, const gchar * tree_id)
{
  g_autofree gchar *key = peer_tree_client_dup_data_key (self->session.client, tree_id);
  g_autoptr (GError) error = NULL;

  if (key == NULL || self->hub == NULL)
    return;
  if (!pt_data_hub_set_key (self->hub, tree_id, key, &error)) {
    GST_ELEMENT_WARNING (self, STREAM, DECRYPT, ("Cannot verify the data of tree \"%s\".",
            tree_id), ("%s", error->message));
    return;
  }
  self->session.config.data = TRUE;
  pt_fanout_set_data (self->session.children, self->hub);
}

/* PtFanoutGetTee (any thread, with streams_lock): every received stream can
 * be relayed */
static GstElement *
get_tee (GstElement * element, guint index)
{
  GstPeerTreeSrc *self = GST_PEER_TREE_SRC (element);

  if (index >= self->streams->len)
    return NULL;
  return ((PtSrcStream *) g_ptr_array_index (self->streams, index))->tee;
}

static gboolean
all_streams_ready (GstPeerTreeSrc * self)
{
  gboolean ready;

  g_mutex_lock (&self->streams_lock);
  ready = self->expected_streams > 0 && self->streams->len >= self->expected_streams;
  /* a tree of data alone: once the parent's data channel is there */
  if (!ready && self->expected_streams == 0 && self->parent_data && self->upstream)
    ready = pt_upstream_remote_has_data (self->upstream);
  g_mutex_unlock (&self->streams_lock);
  return ready;
}

static void
check_streams_ready (GstPeerTreeSrc * self)
{
  if (self->session.children == NULL || self->holding_children || !all_streams_ready (self))
    return;
  pt_fanout_start_waiting (self->session.children);
  for (guint i = 0; i < self->renewing->len; i++)
    pt_fanout_start_child (self->session.children, g_ptr_array_index (self->renewing, i), FALSE);
  g_ptr_array_set_size (self->renewing, 0);
}

/* The streams come from another source now (see hold_for_new_source): close
 * the children's links; each child gets a new one, with the new caps, once
 * every stream flows from the new upstream. The child then sees an offer of
 * a new session from the same parent and replaces its own upstream link
 * (and so on down the tree). */
static void
hold_children (GstPeerTreeSrc * self)
{
  g_autoptr (GPtrArray) ids = NULL;

  if (self->session.children == NULL)
    return;
  self->holding_children = TRUE;
  ids = pt_fanout_drop_children (self->session.children);
  for (guint i = 0; i < ids->len; i++) {
    gchar *id = g_ptr_array_index (ids, i);

    GST_INFO_OBJECT (self, "child %s waits for the new source's streams", id);
    g_ptr_array_add (self->renewing, g_strdup (id));
  }
}

/* Asks the parent for a keyframe of @st, as a child's PLI would: an upstream
 * GstForceKeyUnit with the SSRC and payload type, which the parent-facing
 * webrtcbin turns into PLI/FIR. The keyframe then reaches the whole subtree.
 * Sent by on_tee_buffer from the upstream's streaming thread: rtpsession may
 * send the RTCP (SRTCP through OpenSSL) from the calling thread, and OpenSSL's
 * per-thread state must not end up in the element's loop thread, whose exit
 * then races OpenSSL's own cleanup (double free seen under ASan). */
static void
request_keyframe (GstPeerTreeSrc * self, PtSrcStream * st)
{
  GST_DEBUG_OBJECT (self, "keyframe wanted for stream %u", st->mline);
  g_atomic_int_set (&st->keyframe_wanted, 1);
}

/* The request may be lost (the parent itself may be switching parents, or
 * its link to us not be fully up): ask again a little later, twice. */
static gboolean
keyframe_again_cb (gpointer data)
{
  PtFlowing *f = data;

  if (flowing_is_current (f))
    request_keyframe (f->self, f->st);
  return G_SOURCE_REMOVE;
}

static void
request_keyframe_later (GstPeerTreeSrc * self, PtSrcStream * st, guint ms)
{
  PtFlowing *f = g_new0 (PtFlowing, 1);
  g_autoptr (GSource) timer = g_timeout_source_new (ms);

  f->self = gst_object_ref (self);
  f->st = st;
  g_mutex_lock (&self->streams_lock);
  f->generation = self->generation;
  g_mutex_unlock (&self->streams_lock);
  g_source_set_callback (timer, keyframe_again_cb, f, pt_flowing_free);
  g_source_attach (timer, pt_loop_get_context (self->session.loop));
}

/* Media flows from the current upstream link into @st. */
static void
upstream_flowing (GstPeerTreeSrc * self, PtSrcStream * st)
{
  gboolean all = TRUE;

  /* After a new parent, ask for a keyframe at once and again after 0.5 s
   * and 2 s, so the whole subtree recovers without waiting for a decoder to
   * notice. (It was once disabled for teardown crashes; those were OpenSSL's
   * atexit cleanup racing exiting streaming threads, see
   * tests/gst/pt-gst-process.h.) */
  if (st->is_video) {
    request_keyframe (self, st);
    request_keyframe_later (self, st, 500);
    request_keyframe_later (self, st, 2000);
  }

  g_mutex_lock (&self->streams_lock);
  for (guint i = 0; i < self->streams->len; i++)
    all &= ((PtSrcStream *) g_ptr_array_index (self->streams, i))->generation ==
        self->generation;
  g_mutex_unlock (&self->streams_lock);

  if (all && self->holding_children) {
    self->holding_children = FALSE;
    check_streams_ready (self);
  }
}

/* ---------------------------------------------------------------------- */
/* signalling: PtSessionCallbacks and the client signals of a viewer (loop
 * thread) */

static PeerTreeClient *
make_client (GstElement * element, const gchar * server, const gchar * client_id)
{
  (void) element;
  return peer_tree_client_new (server, client_id);
}

/* The periodic report (pt-session.c): the parent link's figures and the
 * video frames per second out of the element since the last report. */
static void
fill_report (GstElement * element, PeerTreeLinkReport * report)
{
  GstPeerTreeSrc *self = GST_PEER_TREE_SRC (element);
  guint frames = 0;
  gint64 now = g_get_monotonic_time ();

  if (self->upstream)
    pt_upstream_fill_report (self->upstream, report);
  g_mutex_lock (&self->streams_lock);
  for (guint i = 0; i < self->streams->len; i++) {
    PtSrcStream *st = g_ptr_array_index (self->streams, i);

    if (st->is_video)
      frames += (guint) g_atomic_int_get (&st->frames_out);
  }
  g_mutex_unlock (&self->streams_lock);
  if (self->report_at && now > self->report_at && frames >= self->report_frames)
    report->frames_per_second = (frames - self->report_frames) * (gdouble) G_USEC_PER_SEC /
        (now - self->report_at);
  self->report_at = now;
  self->report_frames = frames;
}

/* The client emits tree-joined (tree, depth) and then upstream-changed (tree,
 * parent, depth) for a join: the first upstream-changed after a join is
 * posted as the tree-joined message, which then names the parent too. */
static void
on_tree_joined (GstElement * element, const gchar * tree_id, guint depth)
{
  GstPeerTreeSrc *self = GST_PEER_TREE_SRC (element);

  if (!pt_session_is_active_tree (&self->session, tree_id))
    return;
  take_data_key (self, tree_id);
  pt_upstream_tree_joined (self->upstream, depth);
}

static void
on_upstream_changed (PeerTreeClient * client, const gchar * tree_id, const gchar * parent_id,
    guint depth, gpointer data)
{
  GstPeerTreeSrc *self = data;

  (void) client;
  if (!pt_session_is_active_tree (&self->session, tree_id))
    return;
  pt_upstream_changed (self->upstream, tree_id, parent_id, depth);
}

static gboolean
children_ready (GstElement * element)
{
  GstPeerTreeSrc *self = GST_PEER_TREE_SRC (element);

  return all_streams_ready (self) && !self->holding_children;
}

static void
forget_waiting_child (GstElement * element, const gchar * child_id)
{
  GstPeerTreeSrc *self = GST_PEER_TREE_SRC (element);

  pt_fanout_forget (self->session.children, child_id);
  for (guint i = 0; i < self->renewing->len; i++)
    if (g_str_equal (g_ptr_array_index (self->renewing, i), child_id))
      g_ptr_array_remove_index (self->renewing, i--);
}

/* Only a parent offers: an offer is the upstream's; answers are the
 * children's. */
static gboolean
on_remote_sdp (GstElement * element, const gchar * peer_id, const gchar * type,
    const gchar * sdp)
{
  GstPeerTreeSrc *self = GST_PEER_TREE_SRC (element);

  if (!g_str_equal (type, "offer"))
    return FALSE;
  /* from the parent (a new one, maybe): the streams it offers */
  if (pt_upstream_take_offer (self->upstream, peer_id, sdp)) {
    g_mutex_lock (&self->streams_lock);
    self->expected_streams = 0;
    g_mutex_unlock (&self->streams_lock);
    pt_upstream_set_remote_description (self->upstream, type, sdp);
    g_mutex_lock (&self->streams_lock);
    self->expected_streams = pt_upstream_get_n_remote_streams (self->upstream);
    g_mutex_unlock (&self->streams_lock);
    check_streams_ready (self);
  }
  return TRUE;
}

static gboolean
on_remote_ice (GstElement * element, const gchar * peer_id, guint mline,
    const gchar * candidate)
{
  GstPeerTreeSrc *self = GST_PEER_TREE_SRC (element);

  return pt_upstream_add_remote_candidate (self->upstream, peer_id, mline, candidate);
}

/* The tree is gone: the broadcast ended. Streams already received end with
 * EOS (so a recording is finalised); with none, the viewer cannot go on. */
static void
on_tree_closed (GstElement * element, const gchar * tree_id, const gchar * reason,
    const gchar * description)
{
  GstPeerTreeSrc *self = GST_PEER_TREE_SRC (element);
  GPtrArray *tees;

  GST_INFO_OBJECT (self, "tree %s closed: %s", tree_id, reason);
  pt_fanout_clear (self->session.children);
  g_ptr_array_set_size (self->renewing, 0);
  self->holding_children = FALSE;
  pt_upstream_close (self->upstream);
  g_clear_pointer (&self->session.active_tree, g_free);

  tees = g_ptr_array_new_with_free_func (gst_object_unref);
  g_mutex_lock (&self->streams_lock);
  for (guint i = 0; i < self->streams->len; i++) {
    PtSrcStream *st = g_ptr_array_index (self->streams, i);

    g_ptr_array_add (tees, gst_object_ref (st->tee));
    g_ptr_array_add (tees, gst_object_ref (st->local_tee));
  }
  for (guint i = 0; i < self->data_pads->len; i++) {
    PtSrcData *d = g_ptr_array_index (self->data_pads, i);
    GstFlowReturn ret;

    g_signal_emit_by_name (d->appsrc, "end-of-stream", &ret);
  }
  if (self->data_pads->len > 0 && tees->len == 0) {
    g_mutex_unlock (&self->streams_lock);
    g_ptr_array_unref (tees);
    return;
  }
  g_mutex_unlock (&self->streams_lock);
  if (tees->len == 0) {
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
        ("The tree \"%s\" was closed before any stream arrived: %s", tree_id,
            description), ("reason %s", reason));
  }
  for (guint i = 0; i < tees->len; i++) {
    g_autoptr (GstPad) sink = gst_element_get_static_pad (g_ptr_array_index (tees, i), "sink");

    gst_pad_send_event (sink, gst_event_new_eos ());
  }
  g_ptr_array_unref (tees);
}

static void
on_reconnected (GstElement * element)
{
  pt_upstream_reconnected (GST_PEER_TREE_SRC (element)->upstream);
}

/* The tree's source is away; the server waits @grace s for it
 * (PeerTreeClient::source-lost). */
static void
on_source_lost (PeerTreeClient * client, const gchar * tree_id, guint grace, gpointer data)
{
  GstPeerTreeSrc *self = data;

  (void) client;
  if (!pt_session_is_active_tree (&self->session, tree_id))
    return;
  GST_INFO_OBJECT (self, "the source of %s is away; the server waits %u s for it", tree_id,
      grace);
  pt_upstream_source_lost (self->upstream);
  pt_post_element_message (GST_ELEMENT (self), PT_MESSAGE_SOURCE_LOST,
      "tree-id", G_TYPE_STRING, tree_id, "grace", G_TYPE_UINT, grace, NULL);
}

static void
on_joined (GObject * source, GAsyncResult * res, gpointer data)
{
  PtCall *call = data;
  GstPeerTreeSrc *self = GST_PEER_TREE_SRC (call->self);
  g_autoptr (GError) error = NULL;
  g_autofree gchar *parent = NULL;
  guint depth = 0;
  gboolean ok = peer_tree_client_join_finish (PEER_TREE_CLIENT (source), res, &parent,
      &depth, &error);

  if (pt_call_stopped (call)) {
    pt_call_free (call);
    return;
  }
  if (!ok) {
    g_clear_pointer (&self->session.active_tree, g_free);
    pt_post_client_error (GST_ELEMENT (self), error, "join", self->session.server,
        self->settings.tree_id);
    pt_call_free (call);
    return;
  }
  /* The parent was taken from ::upstream-changed, which the client emits as
   * soon as the reply is read; by now a later one may have moved us. */
  GST_INFO_OBJECT (self, "joined %s under %s at depth %u", self->session.active_tree, parent,
      depth);
  pt_call_free (call);
}

/* connected: join the tree */
static void
on_connected (GstElement * element, PtCall * call)
{
  GstPeerTreeSrc *self = GST_PEER_TREE_SRC (element);

  gint max_children;
  guint max_upload_kbps;

  GST_OBJECT_LOCK (self);
  self->session.active_tree = g_strdup (self->settings.tree_id);
  max_children = self->max_children;
  max_upload_kbps = self->max_upload_kbps;
  GST_OBJECT_UNLOCK (self);
  /* set before joining: signals about the tree may precede the reply */
  peer_tree_client_join_with_capacity_async (self->session.client, self->session.active_tree,
      max_children, max_upload_kbps, NULL, on_joined, call /* reused */ );
}

/* ---------------------------------------------------------------------- */
/* overload shedding (loop thread) */

static void
on_overload_reported (GObject * source, GAsyncResult * res, gpointer data)
{
  PtCall *call = data;
  GstPeerTreeSrc *self = GST_PEER_TREE_SRC (call->self);
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) moved = NULL;
  guint max_children = 0;
  gboolean ok = peer_tree_client_capacity_finish (PEER_TREE_CLIENT (source), res,
      &max_children, &moved, &error);

  if (pt_call_stopped (call)) {
    pt_call_free (call);
    return;
  }
  if (!ok) {
    /* e.g. reported too soon after the last one: the next window says again */
    GST_INFO_OBJECT (self, "overload report refused: %s", error->message);
  } else {
    GST_INFO_OBJECT (self, "overloaded: the server moved %s, leaves us %u children",
        moved[0] ? moved[0] : "nobody", max_children);
    pt_post_element_message (GST_ELEMENT (self), PT_MESSAGE_OVERLOADED,
        "tree-id", G_TYPE_STRING, self->session.active_tree,
        "max-children", G_TYPE_UINT, max_children,
        moved[0] ? "moved-child" : NULL, G_TYPE_STRING, moved[0], NULL);
  }
  pt_call_free (call);
}

/* Once a second: what each child lost (RTCP receiver reports) and what this
 * relay lost on its parent link since the last tick (pt-overload.h). */
static gboolean
on_overload_tick (gpointer data)
{
  GstPeerTreeSrc *self = data;
  PtSession *session = &self->session;
  g_autoptr (GHashTable) children = NULL;
  guint64 lost = 0, received = 0;
  gconstpointer link = NULL;
  gdouble parent_loss = -1;

  if (self->upstream == NULL || session->children == NULL || session->active_tree == NULL)
    return G_SOURCE_CONTINUE;
  if (pt_upstream_sample_counts (self->upstream, &lost, &received, &link)) {
    if (self->have_parent_counts && link == self->parent_link && received >= self->parent_received
        && lost >= self->parent_lost) {
      guint64 dl = lost - self->parent_lost, dr = received - self->parent_received;

      /* nothing arrived: no evidence the link is clean */
      if (dr > 0)
        parent_loss = (gdouble) dl / (gdouble) (dl + dr);
    }
    self->parent_link = link;
    self->parent_lost = lost;
    self->parent_received = received;
    self->have_parent_counts = TRUE;
  } else {
    self->have_parent_counts = FALSE;
  }
  children = pt_fanout_sample_loss (session->children);
  GST_LOG_OBJECT (self, "overload tick: %u children reporting, parent loss %.3f",
      g_hash_table_size (children), parent_loss);
  if (pt_overload_tick (self->overload, children, parent_loss)) {
    GST_INFO_OBJECT (self, "%u children keep losing packets while the parent link is clean: "
        "reporting an overload", g_hash_table_size (children));
    peer_tree_client_report_overload_async (session->client, session->active_tree, NULL,
        on_overload_reported, pt_call_new (GST_ELEMENT (self), session->cancellable));
  }
  return G_SOURCE_CONTINUE;
}

/* The source came back with a new key (PeerTreeClient::data-key-changed) */
static void
on_data_key_changed (PeerTreeClient * client, const gchar * tree_id, const gchar * key,
    gpointer data)
{
  GstPeerTreeSrc *self = data;

  (void) client;
  (void) key;
  if (!pt_session_is_active_tree (&self->session, tree_id))
    return;
  GST_INFO_OBJECT (self, "the source of %s signs with a new key", tree_id);
  take_data_key (self, tree_id);
}

static void
started (GstElement * element)
{
  GstPeerTreeSrc *self = GST_PEER_TREE_SRC (element);
  PtSession *session = &self->session;
  gboolean shed;

  self->renewing = g_ptr_array_new_with_free_func (g_free);
  if (self->hub)
    pt_data_hub_set_context (self->hub, pt_loop_get_context (session->loop));
  self->upstream = pt_upstream_new (element, GST_CAT_DEFAULT, &upstream_callbacks,
      session->client, &session->active_tree, &session->config,
      pt_loop_get_context (session->loop), session->cancellable, session->server);
  g_signal_connect (session->client, "upstream-changed", G_CALLBACK (on_upstream_changed),
      self);
  g_signal_connect (session->client, "source-lost", G_CALLBACK (on_source_lost), self);
  GST_OBJECT_LOCK (self);
  shed = self->shed_overload && self->max_children != 0;
  GST_OBJECT_UNLOCK (self);
  if (shed) {
    self->overload = pt_overload_new (PT_OVERLOAD_WINDOW, PT_OVERLOAD_CHILD_LOSS,
        PT_OVERLOAD_PARENT_LOSS, PT_OVERLOAD_HOLDOFF);
    self->have_parent_counts = FALSE;
    self->parent_link = NULL;
    self->overload_timer = g_timeout_source_new_seconds (1);
    g_source_set_callback (self->overload_timer, on_overload_tick, self, NULL);
    g_source_attach (self->overload_timer, pt_loop_get_context (session->loop));
  }
  g_signal_connect (session->client, "data-key-changed", G_CALLBACK (on_data_key_changed),
      self);
}

static void
stopping (GstElement * element)
{
  GstPeerTreeSrc *self = GST_PEER_TREE_SRC (element);

  g_clear_pointer (&self->renewing, g_ptr_array_unref);
  self->holding_children = FALSE;
  if (self->overload_timer) {
    g_source_destroy (self->overload_timer);
    g_clear_pointer (&self->overload_timer, g_source_unref);
  }
  g_clear_pointer (&self->overload, pt_overload_free);
  g_clear_pointer (&self->upstream, pt_upstream_free);
}

static const PtSessionCallbacks session_callbacks = {
  .make_client = make_client,
  .started = started,
  .stopping = stopping,
  .connected = on_connected,
  .get_tee = get_tee,
  .children_ready = children_ready,
  .forget_child = forget_waiting_child,
  .remote_sdp = on_remote_sdp,
  .remote_ice = on_remote_ice,
  .tree_joined = on_tree_joined,
  .fill_report = fill_report,
  .tree_closed = on_tree_closed,
  .reconnected = on_reconnected,
  /* the links stay: media keeps flowing while the client reconnects (with
   * backoff) and re-registers its place in the tree */
  .disconnected_consequence = "the stream continues while the parent peer lasts, "
      "and the element reconnects.",
};

/* ---------------------------------------------------------------------- */
/* reconnect-upstream (application thread, then loop thread) */

static gboolean
reconnect_upstream_in_loop (gpointer data)
{
  GstPeerTreeSrc *self = data;

  if (self->upstream)
    pt_upstream_reconnect (self->upstream);
  return G_SOURCE_REMOVE;
}

/* Action signal "reconnect-upstream": returns FALSE when not started. */
static gboolean
gst_peer_tree_src_reconnect_upstream (GstPeerTreeSrc * self)
{
  return pt_session_invoke (&self->session, reconnect_upstream_in_loop,
      gst_object_ref (self), gst_object_unref);
}

/* ---------------------------------------------------------------------- */
/* state changes (application thread) */

static gboolean
gst_peer_tree_src_start (GstPeerTreeSrc * self)
{
  g_autofree gchar *server = NULL;
  g_autofree gchar *client_id = NULL;

  GST_OBJECT_LOCK (self);
  if (self->settings.tree_id == NULL || *self->settings.tree_id == '\0') {
    GST_OBJECT_UNLOCK (self);
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
        ("No tree to join: set the tree-id property or a peertree:// URI."), (NULL));
    return FALSE;
  }
  pt_session_take_settings (&self->session, &self->settings);
  self->session.config.latency_ms = self->latency;
  self->session.config.adaptive_latency = self->latency_mode == GST_PEER_TREE_LATENCY_ADAPTIVE;
  self->session.config.repair = self->repair;
  server = g_strdup (self->settings.server);
  client_id = g_strdup (self->settings.client_id);
  GST_OBJECT_UNLOCK (self);

  /* the data's key comes with the tree (take_data_key) */
  self->hub = pt_data_hub_new (&data_callbacks, self);
  /* tests: a relay that alters what it forwards */
  pt_data_hub_apply_test_hooks (self->hub, G_OBJECT (self));
  pt_session_start (&self->session, "peertreesrc", server, client_id);
  return TRUE;
}

static void
stream_free (PtSrcStream * st, GstPeerTreeSrc * self)
{
  for (guint i = 0; i < st->local->len; i++) {
    GstElement *e = g_ptr_array_index (st->local, i);

    pt_element_stop_and_remove (GST_BIN (self), e);
  }
  g_ptr_array_unref (st->local);
  pt_element_stop_and_remove (GST_BIN (self), st->tee);
  pt_element_stop_and_remove (GST_BIN (self), st->local_tee);
  if (st->ghost) {
    g_signal_handlers_disconnect_by_data (st->ghost, st);
    gst_element_remove_pad (GST_ELEMENT (self), st->ghost);
  }
  g_free (st);
}

/* PAUSED→READY, before the bin's children change state: closes every link
 * (signalling and webrtcbins) and stops the loop thread. Afterwards no
 * thread of ours adds, removes or changes the state of a child element, so
 * the bin's own state change never races one of ours. */
static void
gst_peer_tree_src_stop_links (GstPeerTreeSrc * self)
{
  pt_session_stop (&self->session);
  /* no link is left: no message arrives any more */
  if (self->hub) {
    pt_data_hub_close (self->hub);
    g_clear_pointer (&self->hub, pt_data_hub_unref);
  }
}

static void
data_pad_free (PtSrcData * d, GstPeerTreeSrc * self)
{
  pt_element_stop_and_remove (GST_BIN (self), d->appsrc);
  gst_object_unref (d->appsrc);
  if (GST_OBJECT_PARENT (d->ghost) == GST_OBJECT (self))
    gst_element_remove_pad (GST_ELEMENT (self), d->ghost);
  else
    gst_object_unref (d->ghost);
  g_free (d->caps);
  g_free (d);
}

/* PAUSED→READY, after the children stopped streaming: the tees, the local
 * output and the pads go. */
static void
gst_peer_tree_src_stop (GstPeerTreeSrc * self)
{
  GPtrArray *streams, *data_pads;

  gst_peer_tree_src_stop_links (self);

  g_mutex_lock (&self->streams_lock);
  data_pads = self->data_pads;
  self->data_pads = g_ptr_array_new ();
  self->parent_data = FALSE;
  streams = self->streams;
  self->streams = g_ptr_array_new ();
  self->expected_streams = 0;
  self->no_more_pads = FALSE;
  self->next_video = self->next_audio = 0;
  g_mutex_unlock (&self->streams_lock);
  for (guint i = 0; i < streams->len; i++)
    stream_free (g_ptr_array_index (streams, i), self);
  g_ptr_array_unref (streams);
  for (guint i = 0; i < data_pads->len; i++)
    data_pad_free (g_ptr_array_index (data_pads, i), self);
  g_ptr_array_unref (data_pads);
}

static GstStateChangeReturn
gst_peer_tree_src_change_state (GstElement * element, GstStateChange transition)
{
  GstPeerTreeSrc *self = GST_PEER_TREE_SRC (element);
  GstStateChangeReturn ret;

  switch (transition) {
    case GST_STATE_CHANGE_NULL_TO_READY:
      if (!pt_check_missing_element (element, self->missing_element))
        return GST_STATE_CHANGE_FAILURE;
      pt_webrtc_prewarm ();
      break;
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!gst_peer_tree_src_start (self))
        return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      gst_peer_tree_src_stop_links (self);
      break;
    default:
      break;
  }

  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE) {
    if (transition == GST_STATE_CHANGE_READY_TO_PAUSED)
      gst_peer_tree_src_stop (self);
    return ret;
  }

  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
    case GST_STATE_CHANGE_PLAYING_TO_PAUSED:
      /* a live source: no preroll */
      ret = GST_STATE_CHANGE_NO_PREROLL;
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      gst_peer_tree_src_stop (self);
      break;
    case GST_STATE_CHANGE_READY_TO_NULL:
      pt_webrtc_prewarm_wait ();
      break;
    default:
      break;
  }
  return ret;
}

static void
gst_peer_tree_src_handle_message (GstBin * bin, GstMessage * message)
{
  switch (GST_MESSAGE_TYPE (message)) {
    case GST_MESSAGE_STREAM_START:
    case GST_MESSAGE_ELEMENT:
      if (GST_MESSAGE_SRC (message) != GST_OBJECT (bin)) {
        gst_message_unref (message);
        return;
      }
      break;
    default:
      break;
  }
  GST_BIN_CLASS (parent_class)->handle_message (bin, message);
}

/* ---------------------------------------------------------------------- */
/* URI handler (application thread): pt-uri.c */

static const gchar *const uri_query_properties[] = { "local-addresses", "client-id", "tls-ca",
  "latency", "latency-mode", "repair", "max-children", "max-upload-kbps", "shed-overload", NULL
};

static const PtUriSpec uri_spec = { GST_URI_SRC, uri_query_properties };

static void
gst_peer_tree_src_uri_handler_init (gpointer iface, gpointer iface_data)
{
  (void) iface_data;
  pt_uri_handler_init (iface, &uri_spec);
}

/* ---------------------------------------------------------------------- */
/* properties */

typedef struct {
  GstPeerTreeSrc *self;
  GstStructure *s;
} PtStatsCtx;

static gboolean
collect_links (gpointer data)
{
  PtStatsCtx *ctx = data;
  GstPeerTreeSrc *self = ctx->self;
  GValue list = G_VALUE_INIT;

  if (self->upstream)
    pt_upstream_append_stats (self->upstream, ctx->s);
  gst_value_list_init (&list, 0);
  pt_session_append_children_stats (&self->session, &list);
  gst_structure_set (ctx->s, "n-children", G_TYPE_UINT, gst_value_list_get_size (&list), NULL);
  gst_structure_take_value (ctx->s, "children", &list);
  return G_SOURCE_REMOVE;
}

static GstStructure *
make_stats (GstPeerTreeSrc * self)
{
  PtStatsCtx ctx = { self, gst_structure_new_empty ("application/x-peertree-src-stats") };

  GST_STATE_LOCK (self);
  GST_OBJECT_LOCK (self);
  gst_structure_set (ctx.s, "tree-id", G_TYPE_STRING, self->settings.tree_id,
      "latency", G_TYPE_UINT, self->latency, NULL);
  GST_OBJECT_UNLOCK (self);
  g_mutex_lock (&self->streams_lock);
  gst_structure_set (ctx.s, "n-streams", G_TYPE_UINT, self->streams->len, NULL);
  g_mutex_unlock (&self->streams_lock);
  if (self->hub) {
    GstStructure *data = pt_data_hub_get_stats (self->hub);

    gst_structure_set (ctx.s, "data", GST_TYPE_STRUCTURE, data, NULL);
    gst_structure_free (data);
  }
  pt_session_invoke_sync (&self->session, collect_links, &ctx);
  GST_STATE_UNLOCK (self);
  return ctx.s;
}

static void
gst_peer_tree_src_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  GstPeerTreeSrc *self = GST_PEER_TREE_SRC (object);

  if (prop_id == PROP_URI) {
    g_autoptr (GError) error = NULL;

    if (!gst_uri_handler_set_uri (GST_URI_HANDLER (self), g_value_get_string (value), &error))
      GST_WARNING_OBJECT (self, "%s", error->message);
    return;
  }

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LATENCY:
      self->latency = g_value_get_uint (value);
      break;
    case PROP_LATENCY_MODE:
      self->latency_mode = g_value_get_enum (value);
      break;
    case PROP_REPAIR:
      self->repair = g_value_get_boolean (value);
      break;
    case PROP_MAX_CHILDREN:
      self->max_children = g_value_get_int (value);
      break;
    case PROP_MAX_UPLOAD_KBPS:
      self->max_upload_kbps = g_value_get_uint (value);
      break;
    case PROP_SHED_OVERLOAD:
      self->shed_overload = g_value_get_boolean (value);
      break;
    default:
      if (!pt_settings_set_property (&self->settings, PROP_SETTINGS, prop_id, value))
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_peer_tree_src_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstPeerTreeSrc *self = GST_PEER_TREE_SRC (object);

  if (prop_id == PROP_STATS) {
    g_value_take_boxed (value, make_stats (self));
    return;
  }
  if (prop_id == PROP_URI) {
    g_value_take_string (value, gst_uri_handler_get_uri (GST_URI_HANDLER (self)));
    return;
  }

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LATENCY:
      g_value_set_uint (value, self->latency);
      break;
    case PROP_LATENCY_MODE:
      g_value_set_enum (value, self->latency_mode);
      break;
    case PROP_REPAIR:
      g_value_set_boolean (value, self->repair);
      break;
    case PROP_MAX_CHILDREN:
      g_value_set_int (value, self->max_children);
      break;
    case PROP_MAX_UPLOAD_KBPS:
      g_value_set_uint (value, self->max_upload_kbps);
      break;
    case PROP_SHED_OVERLOAD:
      g_value_set_boolean (value, self->shed_overload);
      break;
    default:
      if (!pt_settings_get_property (&self->settings, PROP_SETTINGS, prop_id, value))
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_peer_tree_src_finalize (GObject * object)
{
  GstPeerTreeSrc *self = GST_PEER_TREE_SRC (object);

  pt_settings_clear (&self->settings);
  g_ptr_array_unref (self->streams);
  g_ptr_array_unref (self->data_pads);
  g_mutex_clear (&self->streams_lock);
  g_cond_clear (&self->hold_cond);
  pt_session_clear (&self->session);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

/* GstBin drops its SINK/SOURCE flag when the last internal sink/source
 * (a child's webrtcbin) is removed; the element stays what it is, or its
 * pipeline would, e.g., never see its EOS. */
static gboolean
gst_peer_tree_src_remove_element (GstBin * bin, GstElement * element)
{
  gboolean ret = GST_BIN_CLASS (parent_class)->remove_element (bin, element);

  GST_OBJECT_FLAG_SET (bin, GST_ELEMENT_FLAG_SOURCE);
  return ret;
}

static void
gst_peer_tree_src_class_init (GstPeerTreeSrcClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBinClass *bin_class = GST_BIN_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_READY;

  gobject_class->set_property = gst_peer_tree_src_set_property;
  gobject_class->get_property = gst_peer_tree_src_get_property;
  gobject_class->finalize = gst_peer_tree_src_finalize;

  g_object_class_install_property (gobject_class, PROP_URI,
      g_param_spec_string ("uri", "URI",
          "peertree://HOST:PORT/TREE-ID[?local-addresses=…&client-id=…&latency=…"
          "&latency-mode=…&repair=…&max-children=…&max-upload-kbps=…&shed-overload=…]; "
          "sets server, tree-id and the query's properties at once", NULL, rw));
  pt_settings_install_properties (gobject_class, PROP_SETTINGS,
      "Id of the tree to join, as given by the source's peertreesink tree-id",
      "Id this viewer announces to the server; empty lets the server assign one");
  g_object_class_install_property (gobject_class, PROP_LATENCY,
      g_param_spec_uint ("latency", "Latency",
          "Milliseconds the jitterbuffers (local output only: relaying never waits) "
          "wait for a lost or late packet before giving up on it: with latency-mode "
          "adaptive the upper bound (a deep viewer on a long, lossy chain may need it), "
          "with fixed the value", 0, 10000, DEFAULT_LATENCY, rw));
  g_object_class_install_property (gobject_class, PROP_LATENCY_MODE,
      g_param_spec_enum ("latency-mode", "Latency mode",
          "adaptive: once a repair has measured the parent link's round trip (rtx-rtt, "
          "checked every second), the latency is clamp (2 x RTT + 150 ms, 150 ms, latency), "
          "changed only when it moves by more than 20 %; until then, the smaller of 200 ms "
          "and latency. "
          "fixed: always latency", GST_TYPE_PEER_TREE_LATENCY_MODE, DEFAULT_LATENCY_MODE, rw));
  g_object_class_install_property (gobject_class, PROP_REPAIR,
      g_param_spec_boolean ("repair", "Repair",
          "Repair lost packets on each link: NACK and RTX with the parent (a lost packet "
          "is asked again and forwarded to the children once repaired) and answer the "
          "children's NACKs from what this node sent them. FALSE: no NACK, no RTX",
          DEFAULT_REPAIR, rw));
  g_object_class_install_property (gobject_class, PROP_MAX_CHILDREN,
      g_param_spec_int ("max-children", "Maximum children",
          "Children this viewer accepts to relay to: -1 lets the server decide (its k), "
          "0 makes it a leaf that the server never gives a child; above the server's k it "
          "is the server's k", -1, MAX_MAX_CHILDREN, DEFAULT_MAX_CHILDREN, rw));
  g_object_class_install_property (gobject_class, PROP_MAX_UPLOAD_KBPS,
      g_param_spec_uint ("max-upload-kbps", "Maximum upload",
          "Upload budget in kbit/s for relaying, 0 if unknown: once the source declared the "
          "stream's bitrate, the server gives this viewer no more children than the budget "
          "carries ((children + 1) x bitrate <= budget)", 0, MAX_UPLOAD_KBPS,
          DEFAULT_MAX_UPLOAD_KBPS, rw));
  g_object_class_install_property (gobject_class, PROP_SHED_OVERLOAD,
      g_param_spec_boolean ("shed-overload", "Shed overload",
          "When most children's RTCP receiver reports show more than 5 % loss for 3 s while "
          "the parent link loses under 1 % (this relay's uplink is the bottleneck), ask the "
          "server to move the newest child elsewhere and give this relay one child less "
          "(peertree-overloaded message); at most every 7 s",
          DEFAULT_SHED_OVERLOAD, rw));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Tree id, latency, depth, parent, number of streams, upstream link state, "
          "ICE restarts the parent made on the link (upstream-ice-restarts), "
          "webrtcbin statistics (upstream-webrtc) and repair counters (upstream-repair: "
          "latency now, num-lost, rtx-count, rtx-success-count, rtx-rtt, num-rtx-requests, "
          "num-rtx-packets…), and per child: id, link state, streams, ICE restarts "
          "(ice-restarts), webrtcbin "
          "statistics (webrtc) and repair counters (repair: nack-count, pli-count, "
          "num-rtx-requests, num-rtx-packets, late-packets-resent); data: received, "
          "delivered, forged, replayed, lost, resent, last-seq, window-messages, "
          "children, live-children, parent-open",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  gst_element_class_add_static_pad_template (element_class, &video_template);
  gst_element_class_add_static_pad_template (element_class, &audio_template);
  gst_element_class_add_static_pad_template (element_class, &data_template);

  /**
   * GstPeerTreeSrc::data-received:
   * @src: the element
   * @data: the message's payload
   * @seq: its sequence number (from 1, one counter for the tree)
   * @channel: the source's data_%u pad, 65535 for its send-data
   *
   * A data message from the tree's source, verified (its signature and its
   * sequence number). Emitted in order, from a thread of the parent link's
   * webrtcbin: do not block.
   */
  src_signals[SIGNAL_DATA_RECEIVED] = g_signal_new ("data-received",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 3,
      G_TYPE_BYTES, G_TYPE_UINT64, G_TYPE_UINT);
  /**
   * GstPeerTreeSrc::data-lost:
   * @src: the element
   * @seq: the first message received after the loss
   * @count: how many messages before it will never come
   *
   * After a re-parenting beyond the new parent's window (1024 messages,
   * 4 MiB), or with a partially reliable channel (data-max-retransmits).
   */
  src_signals[SIGNAL_DATA_LOST] = g_signal_new ("data-lost", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_UINT64, G_TYPE_UINT64);
  gst_element_class_set_static_metadata (element_class, "peertree viewer and relay",
      "Source/Network/WebRTC",
      "Receives a broadcast from a tree of WebRTC peers and relays it, "
      "without decoding, to its own children", "peertree developers");

  element_class->change_state = GST_DEBUG_FUNCPTR (gst_peer_tree_src_change_state);
  bin_class->handle_message = GST_DEBUG_FUNCPTR (gst_peer_tree_src_handle_message);
  bin_class->remove_element = GST_DEBUG_FUNCPTR (gst_peer_tree_src_remove_element);

  /**
   * GstPeerTreeSrc::reconnect-upstream:
   * @src: the element
   *
   * Asks the server for another parent (e.g. when the picture is poor); the
   * element keeps its children and its pads and switches to the new parent
   * as soon as it offers. Returns %FALSE when the element is not running.
   */
  g_signal_new_class_handler ("reconnect-upstream", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION,
      G_CALLBACK (gst_peer_tree_src_reconnect_upstream), NULL, NULL, NULL, G_TYPE_BOOLEAN, 0);
}

static void
gst_peer_tree_src_init (GstPeerTreeSrc * self)
{
  static const gchar *const required[] = { "webrtcbin", "nicesrc", "nicesink",
    "dtlssrtpdec", "tee", "queue", NULL
  };

  pt_settings_init (&self->settings);
  self->latency = DEFAULT_LATENCY;
  self->latency_mode = DEFAULT_LATENCY_MODE;
  self->repair = DEFAULT_REPAIR;
  self->max_children = DEFAULT_MAX_CHILDREN;
  self->max_upload_kbps = DEFAULT_MAX_UPLOAD_KBPS;
  self->shed_overload = DEFAULT_SHED_OVERLOAD;
  g_mutex_init (&self->streams_lock);
  g_cond_init (&self->hold_cond);
  self->streams = g_ptr_array_new ();
  self->data_pads = g_ptr_array_new ();
  pt_session_init (&self->session, GST_ELEMENT (self), GST_CAT_DEFAULT, &session_callbacks,
      &self->streams_lock);
  self->missing_element = pt_find_missing_element (required);
  GST_OBJECT_FLAG_SET (self, GST_ELEMENT_FLAG_SOURCE);
}
