/* peertreesink — source of a peertree broadcast tree
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/**
 * SECTION:element-peertreesink
 *
 * Creates a tree on a peertree signalling server and becomes its source: it
 * encodes each input once (VP8 by default, H.264 with `video-codec=h264`,
 * Opus for audio), or only payloads input that is already VP8, H.264 or
 * Opus, and sends the RTP to up to `k1` children, one webrtcbin per child.
 * Children relay to their own children without decoding.
 *
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! peertreesink server=ws://127.0.0.1:8645 tree-id=demo
 * ]|
 *
 * Topology (one chain per request pad, one webrtcbin per child):
 *
 *   video_0 ─► clocksync ─► [videoconvert ─► queue ─► vp8enc] ─► rtpvp8pay ─► tee ─┬─► queue ─► webrtcbin (child A) sink_0
 *                                                                                 └─► queue ─► webrtcbin (child B) sink_0
 *   audio_0 ─► clocksync ─► [audioconvert ─► audioresample ─► opusenc] ─► rtpopuspay ─► tee ─┬─► queue ─► webrtcbin (child A) sink_1
 *                                                                                            └─► …
 *
 * The bracketed encoder is absent for encoded input. The chain behind a pad
 * is built on its first CAPS event. Children that join before every stream
 * has RTP caps wait; a stream added later renegotiates existing children.
 *
 * Data (`data=true`, or a `data_%u` request pad before the element starts):
 * every link also carries a WebRTC data channel. Each buffer into a `data_%u`
 * pad (any caps but audio, video and image), and each `send-data` action,
 * is one message of up to 64 KiB with its PTS, signed with the tree's
 * Ed25519 key (made at start, registered at create) and sent to every
 * child, which verifies it and relays it (pt-data.h). `peertreesrc` gives
 * it out on a `data_%u` pad with the same caps and in `data-received`.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <string.h>


#include "gstpeertreeelements.h"
#include "pt-data.h"
#include "pt-fanout.h"
#include "pt-link.h"
#include "pt-loop.h"
#include "pt-session.h"
#include "pt-settings.h"
#include "pt-uri.h"
#include "peertree/peertree-client.h"
#include "common/pt-element-packages.h"

GST_DEBUG_CATEGORY_STATIC (gst_peer_tree_sink_debug);
#define GST_CAT_DEFAULT gst_peer_tree_sink_debug

#define DEFAULT_K 0
#define DEFAULT_K1 0
#define DEFAULT_VIDEO_CODEC GST_PEER_TREE_VIDEO_CODEC_VP8
/* large: keyframes are made on demand (PLI/FIR from a joining child) */
#define KEYFRAME_MAX_DIST 10000

enum {
  PROP_0,
  PROP_SETTINGS,                /* server … turn-server (pt-settings.h) */
  PROP_K = PROP_SETTINGS + PT_SETTINGS_N_PROPS,
  PROP_K1,
  PROP_VIDEO_CODEC,
  PROP_SECRET,
  PROP_REPAIR,
  PROP_FEC_PERCENTAGE,
  PROP_DATA,
  PROP_DATA_ORDERED,
  PROP_DATA_MAX_RETRANSMITS,
  PROP_STATS,
};

enum {
  SIGNAL_SEND_DATA,
  N_SIGNALS,
};

static guint sink_signals[N_SIGNALS];

#define DEFAULT_DATA FALSE
#define DEFAULT_DATA_ORDERED TRUE
#define DEFAULT_DATA_MAX_RETRANSMITS -1

/* A data_%u request pad: each buffer is one message on channel @index. */
typedef struct {
  GstPeerTreeSink *self;        /* not a ref */
  GstPad *pad;
  guint index;
  gchar *caps;                  /* streams_lock: the caps string it declares */
  gboolean eos;
} PtSinkData;

#define DEFAULT_REPAIR TRUE
#define DEFAULT_FEC_PERCENTAGE 0
/* Opus in-band FEC (with repair): the encoder spends bits on a coarse copy
 * of each previous frame, tuned for this much loss */
#define OPUS_FEC_LOSS_PERCENT 10

typedef struct {
  GstPeerTreeSink *self;        /* not a ref */
  GstPad *ghost;                /* the request pad */
  gboolean is_video;
  guint pt;
  guint32 ssrc;
  GstElement *tee;              /* NULL until the first CAPS event */
  GPtrArray *elements;          /* chain elements, for release */
  gboolean has_caps;            /* the tee has RTP caps */
  gboolean eos;                 /* EOS arrived on the request pad */
} PtSinkStream;

struct _GstPeerTreeSink {
  GstBin parent;

  /* properties, object lock */
  PtSettings settings;
  guint k, k1;
  GstPeerTreeVideoCodec video_codec;
  gboolean repair;
  guint fec_percentage;
  gchar *secret;                /* NULL until started: then a random one */
  gboolean data;
  gboolean data_ordered;
  gint data_max_retransmits;

  const gchar *missing_element; /* found in _init, reported at NULL→READY */

  /* the stream's bitrate, measured and declared to the server (the loop
   * thread; rtp_bytes: atomic, the streaming threads add) */
  gint rtp_bytes;
  gint64 rate_since_us;
  guint declared_kbps;

  /* streams_lock: shared with streaming threads */
  GMutex streams_lock;
  GPtrArray *streams;           /* PtSinkStream, in request order */
  guint next_video, next_audio, next_pt;
  GPtrArray *data_pads;         /* PtSinkData */
  guint next_data;
  /* between start and stop (streams_lock to read it from a streaming
   * thread): the tree's data, signed here */
  PtDataHub *hub;
  gchar *data_key;              /* loop thread: its public key, base64 */

  /* the loop thread, the client, the children (pt-session.h); its
   * active_tree is the tree created on the server */
  PtSession session;
};

static GstStaticPadTemplate video_template = GST_STATIC_PAD_TEMPLATE ("video_%u",
    GST_PAD_SINK, GST_PAD_REQUEST,
    GST_STATIC_CAPS ("video/x-raw(ANY); video/x-vp8; "
        "video/x-h264, stream-format=(string){ avc, byte-stream }"));

static GstStaticPadTemplate audio_template = GST_STATIC_PAD_TEMPLATE ("audio_%u",
    GST_PAD_SINK, GST_PAD_REQUEST,
    GST_STATIC_CAPS ("audio/x-raw(ANY); audio/x-opus"));

/* anything but audio, video and image: refused at the CAPS event */
static GstStaticPadTemplate data_template = GST_STATIC_PAD_TEMPLATE ("data_%u",
    GST_PAD_SINK, GST_PAD_REQUEST, GST_STATIC_CAPS_ANY);

GType
gst_peer_tree_video_codec_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    {GST_PEER_TREE_VIDEO_CODEC_VP8, "VP8 (vp8enc)", "vp8"},
    {GST_PEER_TREE_VIDEO_CODEC_H264, "H.264 (x264enc or openh264enc)", "h264"},
    {0, NULL, NULL},
  };

  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstPeerTreeVideoCodec", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

static void gst_peer_tree_sink_uri_handler_init (gpointer iface, gpointer iface_data);

#define gst_peer_tree_sink_parent_class parent_class
G_DEFINE_TYPE_WITH_CODE (GstPeerTreeSink, gst_peer_tree_sink, GST_TYPE_BIN,
    G_IMPLEMENT_INTERFACE (GST_TYPE_URI_HANDLER, gst_peer_tree_sink_uri_handler_init));
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (peertreesink, "peertreesink", GST_RANK_NONE,
    GST_TYPE_PEER_TREE_SINK,
    GST_DEBUG_CATEGORY_INIT (gst_peer_tree_sink_debug, "peertreesink", 0,
        "peertree source element"));

static void check_streams_ready (GstPeerTreeSink * self);

/* ---------------------------------------------------------------------- */
/* encoding chains (streaming thread, on the first CAPS event) */

static GstElement *
make (GstPeerTreeSink * self, PtSinkStream * st, const gchar * factory)
{
  GstElement *e = gst_element_factory_make (factory, NULL);

  if (e == NULL)
    return NULL;
  gst_bin_add (GST_BIN (self), e);
  g_ptr_array_add (st->elements, gst_object_ref (e));
  return e;
}

/* openh264enc first: its constrained-baseline stream is what openh264dec
 * (the H.264 decoder gst-plugins-bad gives every viewer) decodes; a viewer
 * with only openh264dec decoded no frame of x264enc's output in our tests.
 * x264enc is the fallback where openh264 is not built. */
static GstElement *
make_h264_encoder (GstPeerTreeSink * self, PtSinkStream * st)
{
  GstElement *enc = make (self, st, "openh264enc");

  if (enc) {
    g_object_set (enc, "gop-size", KEYFRAME_MAX_DIST, NULL);
    gst_util_set_object_arg (G_OBJECT (enc), "usage-type", "camera");
    return enc;
  }
  enc = make (self, st, "x264enc");
  if (enc) {
    gst_util_set_object_arg (G_OBJECT (enc), "tune", "zerolatency");
    gst_util_set_object_arg (G_OBJECT (enc), "speed-preset", "ultrafast");
    g_object_set (enc, "key-int-max", KEYFRAME_MAX_DIST, NULL);
  }
  return enc;
}

/* Builds clocksync ! [encoder] ! payloader ! tee for @caps; returns the first
 * element's sink pad. Called with streams_lock. */
static GstPad *
build_chain (GstPeerTreeSink * self, PtSinkStream * st, GstCaps * caps, GError ** error)
{
  const GstStructure *s = gst_caps_get_structure (caps, 0);
  const gchar *name = gst_structure_get_name (s);
  GstElement *first, *pay = NULL, *last;
  const gchar *wanted = NULL, *package;
  GstPeerTreeVideoCodec codec;
  gboolean ok = TRUE, repair;

  GST_OBJECT_LOCK (self);
  codec = self->video_codec;
  repair = self->repair;
  GST_OBJECT_UNLOCK (self);

  /* paces non-live input to real time; live input passes at once */
  first = last = make (self, st, "clocksync");

#define APPEND(factory) G_STMT_START { \
    GstElement *e_ = make (self, st, factory); \
    if (e_ == NULL) { name = factory; goto missing_named; } \
    ok &= gst_element_link (last, e_); last = e_; } G_STMT_END

  if (g_str_equal (name, "video/x-raw")) {
    GstElement *enc;

    APPEND ("videoconvert");
    APPEND ("queue");
    g_object_set (last, "max-size-buffers", 2, "max-size-bytes", 0,
        "max-size-time", (guint64) 0, NULL);
    if (codec == GST_PEER_TREE_VIDEO_CODEC_H264) {
      enc = make_h264_encoder (self, st);
      if (enc == NULL) {
        name = "openh264enc or x264enc";
        goto missing_named;
      }
      /* 4:2:0 in and constrained baseline out, which every H.264 decoder
       * and browser takes: x264enc would otherwise follow its input to
       * e.g. High 4:4:4, which no peer's depayloader/decoder negotiates */
      {
        g_autoptr (GstCaps) raw = gst_caps_from_string ("video/x-raw, format=(string)I420");
        g_autoptr (GstCaps) h264 = gst_caps_from_string ("video/x-h264, "
            "profile=(string){ constrained-baseline, baseline }");
        GstElement *parse = make (self, st, "h264parse");

        if (parse == NULL) {
          name = "h264parse";
          goto missing_named;
        }
        ok &= gst_element_link_filtered (last, enc, raw);
        ok &= gst_element_link_filtered (enc, parse, h264);
        last = parse;
      }
      pay = make (self, st, (wanted = "rtph264pay"));
    } else {
      APPEND ("vp8enc");
      /* tuned for on-demand keyframes and no encoder delay */
      g_object_set (last, "deadline", (gint64) 1, "keyframe-max-dist", KEYFRAME_MAX_DIST,
          "lag-in-frames", 0, NULL);
      gst_util_set_object_arg (G_OBJECT (last), "error-resilient", "default");
      pay = make (self, st, (wanted = "rtpvp8pay"));
    }
  } else if (g_str_equal (name, "video/x-vp8")) {
    pay = make (self, st, (wanted = "rtpvp8pay"));
  } else if (g_str_equal (name, "video/x-h264")) {
    APPEND ("h264parse");
    pay = make (self, st, (wanted = "rtph264pay"));
  } else if (g_str_equal (name, "audio/x-raw")) {
    APPEND ("audioconvert");
    APPEND ("audioresample");
    APPEND ("opusenc");
    /* a lost packet is rebuilt from the next one's FEC where a NACK would
     * come too late for audio */
    if (repair)
      g_object_set (last, "inband-fec", TRUE, "packet-loss-percentage",
          OPUS_FEC_LOSS_PERCENT, NULL);
    pay = make (self, st, (wanted = "rtpopuspay"));
  } else if (g_str_equal (name, "audio/x-opus")) {
    pay = make (self, st, (wanted = "rtpopuspay"));
  } else {
    g_set_error (error, GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT,
        "peertreesink cannot send %s", name);
    return NULL;
  }
  if (first == NULL) {
    name = "clocksync";
    goto missing_named;
  }
  if (pay == NULL) {
    name = wanted;
    goto missing_named;
  }
  if (g_object_class_find_property (G_OBJECT_GET_CLASS (pay), "config-interval")) {
    /* SPS/PPS with every IDR, so a child joining mid-stream can decode */
    g_object_set (pay, "config-interval", -1, NULL);
    gst_util_set_object_arg (G_OBJECT (pay), "aggregate-mode", "zero-latency");
  }
  g_object_set (pay, "pt", st->pt, "ssrc", st->ssrc, NULL);
  ok &= gst_element_link (last, pay);
  if (!ok) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
        "Could not link the %s encoding chain", name);
    return NULL;
  }

  {
    g_autofree gchar *tee_name = g_strdup_printf ("fanout_%s",
        GST_PAD_NAME (st->ghost));
    g_autoptr (GstPad) paysrc = gst_element_get_static_pad (pay, "src");

    st->tee = pt_relay_make_tee (GST_BIN (self), tee_name, NULL, error);
    if (st->tee == NULL)
      return NULL;
    g_ptr_array_add (st->elements, gst_object_ref (st->tee));
    {
      g_autoptr (GstPad) teesink = gst_element_get_static_pad (st->tee, "sink");

      if (GST_PAD_LINK_FAILED (gst_pad_link (paysrc, teesink))) {
        g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
            "Could not link the payloader to its tee");
        return NULL;
      }
    }
  }
  /* downstream first, so nothing is pushed into a stopped element */
  for (guint i = st->elements->len; i > 0; i--)
    gst_element_sync_state_with_parent (g_ptr_array_index (st->elements, i - 1));
  return gst_element_get_static_pad (first, "sink");

missing_named:
  package = pt_element_package (name) ? pt_element_package (name) :
      pt_element_package ("openh264enc");
  g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN,
      "A GStreamer element needed to send %s is missing: %s (install the Debian package %s)",
      gst_structure_get_name (s), name, package);
  return NULL;
#undef APPEND
}

/* loop thread: a stream became ready */
static gboolean
streams_ready_cb (gpointer data)
{
  check_streams_ready (GST_PEER_TREE_SINK (data));
  return G_SOURCE_REMOVE;
}

/* the RTP each stream sends (what one child link costs), for the bitrate */
static GstPadProbeReturn
count_rtp_bytes (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  GstPeerTreeSink *self = user_data;
  gsize n = 0;

  (void) pad;
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER)
    n = gst_buffer_get_size (GST_PAD_PROBE_INFO_BUFFER (info));
  else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST)
    n = gst_buffer_list_calculate_size (GST_PAD_PROBE_INFO_BUFFER_LIST (info));
  g_atomic_int_add (&self->rtp_bytes, (gint) MIN (n, (gsize) G_MAXINT));
  return GST_PAD_PROBE_OK;
}

/* The tee has RTP caps (with ssrc): children can be offered this stream. */
static GstPadProbeReturn
on_tee_caps (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  PtSinkStream *st = user_data;
  GstPeerTreeSink *self = st->self;
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT (info);
  gboolean first = FALSE;

  (void) pad;
  if (GST_EVENT_TYPE (event) != GST_EVENT_CAPS)
    return GST_PAD_PROBE_OK;

  g_mutex_lock (&self->streams_lock);
  if (!st->has_caps)
    first = st->has_caps = TRUE;
  g_mutex_unlock (&self->streams_lock);

  if (first) {
    GST_DEBUG_OBJECT (self, "stream %s ready", GST_PAD_NAME (st->ghost));
    pt_session_invoke (&self->session, streams_ready_cb, gst_object_ref (self),
        gst_object_unref);
  }
  return GST_PAD_PROBE_OK;
}

/* The element is a sink: it posts EOS once every request pad got EOS. The
 * internal sinks (webrtcbin's nicesinks) never do, and their EOS messages
 * are hidden in handle_message. Children keep what they received. */
static void
handle_eos (GstPeerTreeSink * self, PtSinkStream * st, PtSinkData * dp)
{
  gboolean all = TRUE;

  g_mutex_lock (&self->streams_lock);
  if (st)
    st->eos = TRUE;
  if (dp)
    dp->eos = TRUE;
  for (guint i = 0; i < self->streams->len; i++)
    all &= ((PtSinkStream *) g_ptr_array_index (self->streams, i))->eos;
  for (guint i = 0; i < self->data_pads->len; i++)
    all &= ((PtSinkData *) g_ptr_array_index (self->data_pads, i))->eos;
  g_mutex_unlock (&self->streams_lock);

  GST_INFO_OBJECT (self, "EOS on %s%s", GST_PAD_NAME (st ? st->ghost : dp->pad),
      all ? ": every stream ended" : "");
  if (all)
    gst_element_post_message (GST_ELEMENT (self), gst_message_new_eos (GST_OBJECT (self)));
}

static GstPadProbeReturn
on_sink_caps (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  PtSinkStream *st = user_data;
  GstPeerTreeSink *self = st->self;
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT (info);
  GstCaps *caps;
  g_autoptr (GstPad) target = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GstPad) teesink = NULL;

  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS) {
    handle_eos (self, st, NULL);
    return GST_PAD_PROBE_OK;
  }
  if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP) {
    g_mutex_lock (&self->streams_lock);
    st->eos = FALSE;
    g_mutex_unlock (&self->streams_lock);
    return GST_PAD_PROBE_OK;
  }
  if (GST_EVENT_TYPE (event) != GST_EVENT_CAPS)
    return GST_PAD_PROBE_OK;
  gst_event_parse_caps (event, &caps);

  g_mutex_lock (&self->streams_lock);
  if (st->tee) {
    /* a later caps change (e.g. resolution) goes through the same chain */
    g_mutex_unlock (&self->streams_lock);
    return GST_PAD_PROBE_OK;
  }
  GST_INFO_OBJECT (self, "%s: building chain for %" GST_PTR_FORMAT, GST_PAD_NAME (pad), caps);
  target = build_chain (self, st, caps, &error);
  if (target) {
    teesink = gst_element_get_static_pad (st->tee, "sink");
    gst_pad_add_probe (teesink, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_tee_caps, st, NULL);
    gst_pad_add_probe (teesink, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
        count_rtp_bytes, self, NULL);
    gst_ghost_pad_set_target (GST_GHOST_PAD (st->ghost), target);
  }
  g_mutex_unlock (&self->streams_lock);

  if (target == NULL) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
        ("Cannot send this %s stream: %s", st->is_video ? "video" : "audio",
            error->message), ("caps %" GST_PTR_FORMAT, caps));
    return GST_PAD_PROBE_DROP;
  }
  return GST_PAD_PROBE_OK;
}

static void
stream_free (PtSinkStream * st)
{
  GstPeerTreeSink *self = st->self;

  for (guint i = 0; i < st->elements->len; i++) {
    GstElement *e = g_ptr_array_index (st->elements, i);

    pt_element_stop_and_remove (GST_BIN (self), e);
  }
  g_ptr_array_unref (st->elements);
  g_free (st);
}

/* ---------------------------------------------------------------------- */
/* data (streaming threads, the application's for send-data) */

/* Signs and sends one message; FALSE with @error set if it cannot go. */
static gboolean
publish (GstPeerTreeSink * self, guint channel, const gchar * caps, GstClockTime pts,
    const guint8 * data, gsize size, GError ** error)
{
  g_autoptr (PtDataHub) hub = NULL;

  g_mutex_lock (&self->streams_lock);
  if (self->hub)
    hub = pt_data_hub_ref (self->hub);
  g_mutex_unlock (&self->streams_lock);
  if (hub == NULL) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_STATE_CHANGE,
        "peertreesink sends data only while started, with data=true or a data_%%u pad "
        "requested before it started");
    return FALSE;
  }
  return pt_data_hub_publish (hub, channel, caps, pts, data, size, error);
}

static gboolean
is_media_caps (GstCaps * caps)
{
  const gchar *name = gst_structure_get_name (gst_caps_get_structure (caps, 0));

  return g_str_has_prefix (name, "audio/") || g_str_has_prefix (name, "video/")
      || g_str_has_prefix (name, "image/");
}

static GstFlowReturn
data_chain (GstPad * pad, GstObject * parent, GstBuffer * buf)
{
  PtSinkData *dp = gst_pad_get_element_private (pad);
  GstPeerTreeSink *self = GST_PEER_TREE_SINK (parent);
  g_autofree gchar *caps = NULL;
  g_autoptr (GError) error = NULL;
  GstMapInfo map;
  gboolean ok;

  g_mutex_lock (&self->streams_lock);
  caps = g_strdup (dp->caps);
  g_mutex_unlock (&self->streams_lock);
  if (!gst_buffer_map (buf, &map, GST_MAP_READ)) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, RESOURCE, READ, ("Could not read a data buffer."), (NULL));
    return GST_FLOW_ERROR;
  }
  if (map.size > PT_DATA_MAX_PAYLOAD) {
    gsize size = map.size;

    gst_buffer_unmap (buf, &map);
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, STREAM, FORMAT,
        ("A data message has at most %u bytes; %s got a buffer of %" G_GSIZE_FORMAT ".",
            PT_DATA_MAX_PAYLOAD, GST_PAD_NAME (pad), size), (NULL));
    return GST_FLOW_ERROR;
  }
  ok = publish (self, dp->index, caps, GST_BUFFER_PTS (buf), map.data, map.size, &error);
  gst_buffer_unmap (buf, &map);
  gst_buffer_unref (buf);
  /* before the tree exists there is nobody to send to */
  if (!ok)
    GST_DEBUG_OBJECT (pad, "message dropped: %s", error->message);
  return GST_FLOW_OK;
}

static gboolean
data_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  PtSinkData *dp = gst_pad_get_element_private (pad);
  GstPeerTreeSink *self = GST_PEER_TREE_SINK (parent);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS:{
      GstCaps *caps;

      gst_event_parse_caps (event, &caps);
      if (is_media_caps (caps)) {
        GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
            ("%s takes data, not audio, video or images (use a video_%%u or audio_%%u pad).",
                GST_PAD_NAME (pad)), ("caps %" GST_PTR_FORMAT, caps));
        gst_event_unref (event);
        return FALSE;
      }
      g_mutex_lock (&self->streams_lock);
      g_free (dp->caps);
      dp->caps = gst_caps_to_string (caps);
      if (strlen (dp->caps) > PT_DATA_MAX_CAPS) {
        g_mutex_unlock (&self->streams_lock);
        GST_ELEMENT_ERROR (self, CORE, NEGOTIATION,
            ("The caps of %s are longer than %u bytes.", GST_PAD_NAME (pad),
                PT_DATA_MAX_CAPS), (NULL));
        gst_event_unref (event);
        return FALSE;
      }
      g_mutex_unlock (&self->streams_lock);
      break;
    }
    case GST_EVENT_EOS:
      handle_eos (self, NULL, dp);
      break;
    case GST_EVENT_FLUSH_STOP:
      g_mutex_lock (&self->streams_lock);
      dp->eos = FALSE;
      g_mutex_unlock (&self->streams_lock);
      break;
    default:
      break;
  }
  gst_event_unref (event);
  return TRUE;
}

static gboolean
data_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  if (GST_QUERY_TYPE (query) == GST_QUERY_ACCEPT_CAPS) {
    GstCaps *caps;

    gst_query_parse_accept_caps (query, &caps);
    gst_query_set_accept_caps_result (query, !is_media_caps (caps));
    return TRUE;
  }
  return gst_pad_query_default (pad, parent, query);
}

static GstPad *
request_data_pad (GstPeerTreeSink * self, GstPadTemplate * templ, const gchar * name)
{
  PtSinkData *dp = g_new0 (PtSinkData, 1);
  g_autofree gchar *pad_name = NULL;
  guint index;
  gboolean running;

  GST_OBJECT_LOCK (self);
  running = self->session.loop != NULL;
  GST_OBJECT_UNLOCK (self);
  g_mutex_lock (&self->streams_lock);
  if (running && self->hub == NULL)
    GST_ELEMENT_WARNING (self, CORE, STATE_CHANGE,
        ("A data pad was requested after the tree was created without data: its buffers "
            "are dropped. Set data=true (or request data pads) before starting."), (NULL));
  if (name && sscanf (name, "data_%u", &index) == 1 && index < PT_DATA_SIGNAL_CHANNEL) {
    self->next_data = MAX (self->next_data, index + 1);
  } else {
    index = self->next_data++;
  }
  if (index >= PT_DATA_SIGNAL_CHANNEL) {
    g_mutex_unlock (&self->streams_lock);
    g_free (dp);
    return NULL;
  }
  pad_name = g_strdup_printf ("data_%u", index);
  dp->self = self;
  dp->index = index;
  dp->pad = gst_pad_new_from_template (templ, pad_name);
  g_ptr_array_add (self->data_pads, dp);
  g_mutex_unlock (&self->streams_lock);

  gst_pad_set_element_private (dp->pad, dp);
  gst_pad_set_chain_function (dp->pad, data_chain);
  gst_pad_set_event_function (dp->pad, data_event);
  gst_pad_set_query_function (dp->pad, data_query);
  GST_PAD_SET_ACCEPT_TEMPLATE (dp->pad);
  gst_pad_set_active (dp->pad, TRUE);
  if (!gst_element_add_pad (GST_ELEMENT (self), dp->pad)) {
    g_mutex_lock (&self->streams_lock);
    g_ptr_array_remove (self->data_pads, dp);
    g_mutex_unlock (&self->streams_lock);
    g_free (dp);
    return NULL;
  }
  return dp->pad;
}

static void
data_pad_free (gpointer data)
{
  PtSinkData *dp = data;

  g_free (dp->caps);
  g_free (dp);
}

/* Action signal send-data: one message on the signal's channel. */
static gboolean
gst_peer_tree_sink_send_data (GstPeerTreeSink * self, GBytes * data)
{
  g_autoptr (GError) error = NULL;
  gsize size = 0;
  const guint8 *d;

  if (data == NULL)
    return FALSE;
  d = g_bytes_get_data (data, &size);
  if (!publish (self, PT_DATA_SIGNAL_CHANNEL, "application/x-peertree-data", GST_CLOCK_TIME_NONE,
          d, size, &error)) {
    GST_WARNING_OBJECT (self, "send-data: %s", error->message);
    return FALSE;
  }
  return TRUE;
}

/* ---------------------------------------------------------------------- */
/* request pads (application thread) */

static GstPad *
gst_peer_tree_sink_request_new_pad (GstElement * element, GstPadTemplate * templ,
    const gchar * name, const GstCaps * caps)
{
  GstPeerTreeSink *self = GST_PEER_TREE_SINK (element);
  gboolean is_video = templ == gst_element_class_get_pad_template (
      GST_ELEMENT_GET_CLASS (element), "video_%u");
  PtSinkStream *st;
  g_autofree gchar *pad_name = NULL;
  guint index;

  (void) caps;

  if (templ == gst_element_class_get_pad_template (GST_ELEMENT_GET_CLASS (element), "data_%u"))
    return request_data_pad (self, templ, name);

  g_mutex_lock (&self->streams_lock);
  if (name && sscanf (name, is_video ? "video_%u" : "audio_%u", &index) == 1) {
    pad_name = g_strdup (name);
    if (is_video)
      self->next_video = MAX (self->next_video, index + 1);
    else
      self->next_audio = MAX (self->next_audio, index + 1);
  } else {
    pad_name = g_strdup_printf (is_video ? "video_%u" : "audio_%u",
        is_video ? self->next_video++ : self->next_audio++);
  }
  st = g_new0 (PtSinkStream, 1);
  st->self = self;
  st->is_video = is_video;
  st->pt = self->next_pt++;
  st->ssrc = g_random_int ();
  st->elements = g_ptr_array_new_with_free_func (gst_object_unref);
  st->ghost = gst_ghost_pad_new_no_target_from_template (pad_name, templ);
  g_ptr_array_add (self->streams, st);
  g_mutex_unlock (&self->streams_lock);

  gst_pad_add_probe (st->ghost, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_sink_caps, st, NULL);
  gst_pad_set_active (st->ghost, TRUE);
  if (!gst_element_add_pad (element, st->ghost)) {
    g_mutex_lock (&self->streams_lock);
    g_ptr_array_remove (self->streams, st);
    g_mutex_unlock (&self->streams_lock);
    stream_free (st);
    return NULL;
  }
  return st->ghost;
}

static void
gst_peer_tree_sink_release_pad (GstElement * element, GstPad * pad)
{
  GstPeerTreeSink *self = GST_PEER_TREE_SINK (element);
  PtSinkStream *st = NULL;
  PtSinkData *dp = NULL;

  g_mutex_lock (&self->streams_lock);
  for (guint i = 0; i < self->data_pads->len; i++) {
    if (((PtSinkData *) g_ptr_array_index (self->data_pads, i))->pad == pad) {
      dp = g_ptr_array_steal_index (self->data_pads, i);
      break;
    }
  }
  for (guint i = 0; i < self->streams->len; i++) {
    PtSinkStream *s = g_ptr_array_index (self->streams, i);

    if (s->ghost == pad) {
      st = s;
      g_ptr_array_remove_index (self->streams, i);
      break;
    }
  }
  g_mutex_unlock (&self->streams_lock);
  if (dp) {
    gst_pad_set_active (pad, FALSE);
    gst_element_remove_pad (element, pad);
    data_pad_free (dp);
    return;
  }
  if (st == NULL)
    return;
  /* Children keep their (now silent) m-line: 1.22 cannot remove a
   * transceiver without recreating the link. */
  gst_element_remove_pad (element, pad);
  stream_free (st);
}

/* ---------------------------------------------------------------------- */
/* children (loop thread; get_ready_tee: any thread, with streams_lock) */

/* PtFanoutGetTee: a stream can be sent once its tee has RTP caps */
static GstElement *
get_ready_tee (GstElement * element, guint index)
{
  GstPeerTreeSink *self = GST_PEER_TREE_SINK (element);
  PtSinkStream *st;

  if (index >= self->streams->len)
    return NULL;
  st = g_ptr_array_index (self->streams, index);
  return st->has_caps ? st->tee : NULL;
}

static gboolean
all_streams_ready (GstPeerTreeSink * self)
{
  gboolean ready;

  g_mutex_lock (&self->streams_lock);
  /* a tree of data alone needs no stream */
  ready = self->streams->len > 0 || self->hub != NULL;
  for (guint i = 0; i < self->streams->len && ready; i++)
    ready = ((PtSinkStream *) g_ptr_array_index (self->streams, i))->has_caps;
  g_mutex_unlock (&self->streams_lock);
  return ready;
}

static void
check_streams_ready (GstPeerTreeSink * self)
{
  if (self->session.children == NULL || !all_streams_ready (self))
    return;
  /* streams added after a child joined: renegotiate with it */
  pt_fanout_add_streams (self->session.children);
  pt_fanout_start_waiting (self->session.children);
}

/* ---------------------------------------------------------------------- */
/* signalling: PtSessionCallbacks (loop thread) */

static PeerTreeClient *
make_client (GstElement * element, const gchar * server, const gchar * client_id)
{
  GstPeerTreeSink *self = GST_PEER_TREE_SINK (element);
  g_autofree gchar *secret = NULL;

  GST_OBJECT_LOCK (self);
  if (self->secret == NULL || *self->secret == '\0') {
    /* random, and readable from now on: an application that keeps it can
     * restart its source and reclaim the tree */
    g_free (self->secret);
    self->secret = g_uuid_string_random ();
  }
  secret = g_strdup (self->secret);
  GST_OBJECT_UNLOCK (self);

  /* The secret proves that the tree is ours when we come back within the
   * server's grace period. */
  return g_object_new (PEER_TREE_TYPE_CLIENT, "uri", server, "client-id", client_id,
      "secret", secret, NULL);
}

static gboolean
children_ready (GstElement * element)
{
  return all_streams_ready (GST_PEER_TREE_SINK (element));
}

static void
on_tree_joined (GstElement * element, const gchar * tree_id, guint depth)
{
  GstPeerTreeSink *self = GST_PEER_TREE_SINK (element);

  /* Emitted by the client as soon as the create reply is read, before the
   * events that follow it: a restarted source reclaiming its tree gets its
   * children (downstream-added) right after the reply, possibly before
   * on_created runs. */
  if (self->session.active_tree == NULL)
    self->session.active_tree = g_strdup (tree_id);
  if (self->hub && pt_session_is_active_tree (&self->session, tree_id)) {
    g_autofree gchar *key = peer_tree_client_dup_data_key (self->session.client, tree_id);

    /* signed for this tree; children from now on get a data channel */
    pt_data_hub_set_tree (self->hub, tree_id);
    pt_fanout_set_data (self->session.children, self->hub);
    if (g_strcmp0 (key, self->data_key) != 0)
      GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS,
          ("Tree \"%s\" keeps the data key of the source that created it: its viewers "
              "will reject the data this element signs.", tree_id),
          ("registered %s, ours %s", key, self->data_key));
  }
  /* the source is the root: no parent */
  pt_post_element_message (GST_ELEMENT (self), PT_MESSAGE_TREE_JOINED,
      "tree-id", G_TYPE_STRING, tree_id, "client-id", G_TYPE_STRING,
      peer_tree_client_get_client_id (self->session.client), "parent-id", G_TYPE_STRING, NULL,
      "depth", G_TYPE_UINT, depth, NULL);
}

static void
on_tree_closed (GstElement * element, const gchar * tree_id, const gchar * reason,
    const gchar * description)
{
  (void) description;
  GST_ELEMENT_ERROR (element, RESOURCE, FAILED,
      ("The peertree server closed tree \"%s\": %s", tree_id, reason), (NULL));
}

static void
on_created (GObject * source, GAsyncResult * res, gpointer data)
{
  PtCall *call = data;
  GstPeerTreeSink *self = GST_PEER_TREE_SINK (call->self);
  g_autoptr (GError) error = NULL;
  g_autofree gchar *tree_id = NULL;

  tree_id = peer_tree_client_create_finish (PEER_TREE_CLIENT (source), res, &error);
  if (pt_call_stopped (call)) {
    pt_call_free (call);
    return;
  }
  if (tree_id == NULL) {
    pt_post_client_error (GST_ELEMENT (self), error, "create", self->session.server,
        self->settings.tree_id);
    pt_call_free (call);
    return;
  }
  GST_INFO_OBJECT (self, "created tree %s", tree_id);
  if (self->session.active_tree == NULL)
    self->session.active_tree = g_strdup (tree_id);
  GST_OBJECT_LOCK (self);
  g_free (self->settings.tree_id);
  self->settings.tree_id = g_strdup (tree_id);
  GST_OBJECT_UNLOCK (self);
  g_object_notify (G_OBJECT (self), "tree-id");
  pt_call_free (call);
}

/* Every report interval (loop thread): the bitrate of what the source
 * sends each child, measured since the last report, goes in the report and,
 * when it moved by more than 20 % from what the server knows, is declared
 * to it (`capacity` with bitrateKbps): the server then places newcomers by
 * the members' max-upload-kbps (docs/protocol.md). */
#define PT_SINK_BITRATE_CHANGE 0.2

static void
fill_report (GstElement * element, PeerTreeLinkReport * report)
{
  GstPeerTreeSink *self = GST_PEER_TREE_SINK (element);
  gint64 now = g_get_monotonic_time ();
  gint64 bytes = g_atomic_int_exchange (&self->rtp_bytes, 0);
  guint kbps;

  if (self->rate_since_us == 0 || now <= self->rate_since_us) {
    self->rate_since_us = now;
    return;
  }
  kbps = (guint) (bytes * 8 * 1000 / (now - self->rate_since_us));
  self->rate_since_us = now;
  report->bitrate_kbps = kbps;
  if (kbps == 0 || self->session.active_tree == NULL)
    return;
  if (self->declared_kbps == 0 || ABS ((gdouble) kbps - self->declared_kbps) >
      PT_SINK_BITRATE_CHANGE * self->declared_kbps) {
    GST_DEBUG_OBJECT (self, "declaring a bitrate of %u kbit/s (was %u)", kbps,
        self->declared_kbps);
    g_atomic_int_set ((gint *) & self->declared_kbps, (gint) kbps);
    peer_tree_client_set_bitrate_async (self->session.client, self->session.active_tree, kbps,
        NULL, NULL, NULL);
  }
}

/* connected: create the tree */
static void
on_connected (GstElement * element, PtCall * call)
{
  GstPeerTreeSink *self = GST_PEER_TREE_SINK (element);
  g_autofree gchar *tree_id = NULL;
  guint k, k1;

  GST_OBJECT_LOCK (self);
  tree_id = g_strdup (self->settings.tree_id);
  k = self->k;
  k1 = self->k1;
  GST_OBJECT_UNLOCK (self);
  /* a new tree starts at bitrate 0 on the server: declare it again */
  g_atomic_int_set ((gint *) & self->declared_kbps, 0);
  self->rate_since_us = 0;
  g_atomic_int_set (&self->rtp_bytes, 0);
  /* each new tree (and restart) gets a new key pair */
  g_clear_pointer (&self->data_key, g_free);
  if (self->hub) {
    g_autoptr (GError) error = NULL;

    self->data_key = pt_data_hub_make_key (self->hub, &error);
    if (self->data_key == NULL) {
      GST_ELEMENT_ERROR (self, RESOURCE, FAILED,
          ("Could not make the key that signs the tree's data."), ("%s", error->message));
      pt_call_free (call);
      return;
    }
  }
  peer_tree_client_create_with_data_key_async (self->session.client,
      tree_id && *tree_id ? tree_id : NULL, k, k1, self->data_key, NULL, on_created,
      call /* reused */ );
}

static const PtSessionCallbacks session_callbacks = {
  .make_client = make_client,
  .connected = on_connected,
  .get_tee = get_ready_tee,
  .fill_report = fill_report,
  .children_ready = children_ready,
  .tree_joined = on_tree_joined,
  .tree_closed = on_tree_closed,
  /* existing children keep receiving; no new child can join until the
   * client is reconnected and has registered the tree again */
  .disconnected_consequence = "the viewers keep receiving, no new viewer can join "
      "until it is back.",
};

/* ---------------------------------------------------------------------- */
/* state changes (application thread) */

static gboolean
gst_peer_tree_sink_start (GstPeerTreeSink * self)
{
  g_autofree gchar *server = NULL;
  g_autofree gchar *client_id = NULL;
  gboolean data;

  GST_OBJECT_LOCK (self);
  pt_session_take_settings (&self->session, &self->settings);
  self->session.config.repair = self->repair;
  self->session.config.fec_percentage = self->fec_percentage;
  server = g_strdup (self->settings.server);
  client_id = g_strdup (self->settings.client_id);
  data = self->data;
  self->session.config.data_ordered = self->data_ordered;
  self->session.config.data_max_retransmits = self->data_max_retransmits;
  GST_OBJECT_UNLOCK (self);

  g_mutex_lock (&self->streams_lock);
  if (data || self->data_pads->len > 0) {
    self->hub = pt_data_hub_new (NULL, NULL);
    pt_data_hub_apply_test_hooks (self->hub, G_OBJECT (self));
    self->session.config.data = TRUE;
  }
  g_mutex_unlock (&self->streams_lock);

  pt_session_start (&self->session, "peertreesink", server, client_id);
  return TRUE;
}

static void
gst_peer_tree_sink_stop (GstPeerTreeSink * self)
{
  PtDataHub *hub;
  gboolean stopped = pt_session_stop (&self->session);

  g_mutex_lock (&self->streams_lock);
  hub = g_steal_pointer (&self->hub);
  g_mutex_unlock (&self->streams_lock);
  if (hub) {
    pt_data_hub_close (hub);
    pt_data_hub_unref (hub);
  }
  g_clear_pointer (&self->data_key, g_free);
  if (!stopped)
    return;

  g_mutex_lock (&self->streams_lock);
  for (guint i = 0; i < self->streams->len; i++)
    ((PtSinkStream *) g_ptr_array_index (self->streams, i))->eos = FALSE;
  g_mutex_unlock (&self->streams_lock);
}

static GstStateChangeReturn
gst_peer_tree_sink_change_state (GstElement * element, GstStateChange transition)
{
  GstPeerTreeSink *self = GST_PEER_TREE_SINK (element);
  GstStateChangeReturn ret;

  switch (transition) {
    case GST_STATE_CHANGE_NULL_TO_READY:
      if (!pt_check_missing_element (element, self->missing_element))
        return GST_STATE_CHANGE_FAILURE;
      pt_webrtc_prewarm ();
      break;
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!gst_peer_tree_sink_start (self))
        return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      /* the children's links go first, while the encoding chains still run
       * (as when a child leaves): afterwards no thread of ours changes the
       * state of a child element while the bin changes theirs */
      gst_peer_tree_sink_stop (self);
      break;
    default:
      break;
  }

  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE) {
    if (transition == GST_STATE_CHANGE_READY_TO_PAUSED)
      gst_peer_tree_sink_stop (self);
    return ret;
  }

  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_NULL:
      pt_webrtc_prewarm_wait ();
      break;
    default:
      break;
  }
  return ret;
}

/* Hide the internal webrtcbins' and encoders' non-fatal chatter (e.g. a
 * child's webrtcbin warnings) behind the element's own messages. */
static void
gst_peer_tree_sink_handle_message (GstBin * bin, GstMessage * message)
{
  switch (GST_MESSAGE_TYPE (message)) {
    case GST_MESSAGE_STREAM_START:
    case GST_MESSAGE_ELEMENT:
    case GST_MESSAGE_EOS:
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
/* URI handler (application thread): pt-uri.c. peertree://HOST:PORT/[TREE-ID]
 * [?k=…&k1=…&video-codec=…&client-id=…&local-addresses=…] */

static const gchar *const uri_query_properties[] = { "local-addresses", "client-id", "tls-ca",
  "k", "k1", "video-codec", "repair", "fec-percentage", NULL
};

static const PtUriSpec uri_spec = { GST_URI_SINK, uri_query_properties };

static void
gst_peer_tree_sink_uri_handler_init (gpointer iface, gpointer iface_data)
{
  (void) iface_data;
  pt_uri_handler_init (iface, &uri_spec);
}

/* ---------------------------------------------------------------------- */
/* properties */

typedef struct {
  GstPeerTreeSink *self;
  GValue *list;
} PtStatsCtx;

/* loop thread: one structure per child */
static gboolean
collect_children (gpointer data)
{
  PtStatsCtx *ctx = data;

  pt_session_append_children_stats (&ctx->self->session, ctx->list);
  return G_SOURCE_REMOVE;
}

static GstStructure *
make_stats (GstPeerTreeSink * self)
{
  GstStructure *s;
  GValue children = G_VALUE_INIT;
  PtStatsCtx ctx = { self, &children };

  s = gst_structure_new_empty ("application/x-peertree-sink-stats");
  /* the state lock keeps stop() from freeing the loop meanwhile */
  GST_STATE_LOCK (self);
  GST_OBJECT_LOCK (self);
  gst_structure_set (s, "tree-id", G_TYPE_STRING, self->settings.tree_id,
      "running", G_TYPE_BOOLEAN, self->session.loop != NULL,
      "bitrate-kbps", G_TYPE_UINT, (guint) g_atomic_int_get ((gint *) & self->declared_kbps),
      NULL);
  GST_OBJECT_UNLOCK (self);
  g_mutex_lock (&self->streams_lock);
  gst_structure_set (s, "n-streams", G_TYPE_UINT, self->streams->len, NULL);
  if (self->hub) {
    GstStructure *data = pt_data_hub_get_stats (self->hub);

    gst_structure_set (s, "data", GST_TYPE_STRUCTURE, data, NULL);
    gst_structure_free (data);
  }
  g_mutex_unlock (&self->streams_lock);

  gst_value_list_init (&children, 0);
  /* children live on the loop thread: read them there */
  pt_session_invoke_sync (&self->session, collect_children, &ctx);
  GST_STATE_UNLOCK (self);
  gst_structure_set (s, "n-children", G_TYPE_UINT, gst_value_list_get_size (&children),
      NULL);
  gst_structure_take_value (s, "children", &children);
  return s;
}

static void
gst_peer_tree_sink_set_property (GObject * object, guint prop_id, const GValue * value,
    GParamSpec * pspec)
{
  GstPeerTreeSink *self = GST_PEER_TREE_SINK (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_K:
      self->k = g_value_get_uint (value);
      break;
    case PROP_K1:
      self->k1 = g_value_get_uint (value);
      break;
    case PROP_VIDEO_CODEC:
      self->video_codec = g_value_get_enum (value);
      break;
    case PROP_SECRET:
      g_free (self->secret);
      self->secret = g_value_dup_string (value);
      break;
    case PROP_REPAIR:
      self->repair = g_value_get_boolean (value);
      break;
    case PROP_FEC_PERCENTAGE:
      self->fec_percentage = g_value_get_uint (value);
      break;
    case PROP_DATA:
      self->data = g_value_get_boolean (value);
      break;
    case PROP_DATA_ORDERED:
      self->data_ordered = g_value_get_boolean (value);
      break;
    case PROP_DATA_MAX_RETRANSMITS:
      self->data_max_retransmits = g_value_get_int (value);
      break;
    default:
      if (!pt_settings_set_property (&self->settings, PROP_SETTINGS, prop_id, value))
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_peer_tree_sink_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstPeerTreeSink *self = GST_PEER_TREE_SINK (object);

  if (prop_id == PROP_STATS) {
    g_value_take_boxed (value, make_stats (self));
    return;
  }

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_K:
      g_value_set_uint (value, self->k);
      break;
    case PROP_K1:
      g_value_set_uint (value, self->k1);
      break;
    case PROP_VIDEO_CODEC:
      g_value_set_enum (value, self->video_codec);
      break;
    case PROP_SECRET:
      g_value_set_string (value, self->secret);
      break;
    case PROP_REPAIR:
      g_value_set_boolean (value, self->repair);
      break;
    case PROP_FEC_PERCENTAGE:
      g_value_set_uint (value, self->fec_percentage);
      break;
    case PROP_DATA:
      g_value_set_boolean (value, self->data);
      break;
    case PROP_DATA_ORDERED:
      g_value_set_boolean (value, self->data_ordered);
      break;
    case PROP_DATA_MAX_RETRANSMITS:
      g_value_set_int (value, self->data_max_retransmits);
      break;
    default:
      if (!pt_settings_get_property (&self->settings, PROP_SETTINGS, prop_id, value))
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_peer_tree_sink_finalize (GObject * object)
{
  GstPeerTreeSink *self = GST_PEER_TREE_SINK (object);

  pt_settings_clear (&self->settings);
  g_free (self->secret);
  for (guint i = 0; i < self->streams->len; i++) {
    PtSinkStream *st = g_ptr_array_index (self->streams, i);

    g_ptr_array_unref (st->elements);
    g_free (st);
  }
  g_ptr_array_unref (self->streams);
  g_ptr_array_unref (self->data_pads);
  g_mutex_clear (&self->streams_lock);
  pt_session_clear (&self->session);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

/* GstBin drops its SINK/SOURCE flag when the last internal sink/source
 * (a child's webrtcbin) is removed; the element stays what it is, or its
 * pipeline would, e.g., never see its EOS. */
static gboolean
gst_peer_tree_sink_remove_element (GstBin * bin, GstElement * element)
{
  gboolean ret = GST_BIN_CLASS (parent_class)->remove_element (bin, element);

  GST_OBJECT_FLAG_SET (bin, GST_ELEMENT_FLAG_SINK);
  return ret;
}

static void
gst_peer_tree_sink_class_init (GstPeerTreeSinkClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBinClass *bin_class = GST_BIN_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_READY;

  gobject_class->set_property = gst_peer_tree_sink_set_property;
  gobject_class->get_property = gst_peer_tree_sink_get_property;
  gobject_class->finalize = gst_peer_tree_sink_finalize;

  pt_settings_install_properties (gobject_class, PROP_SETTINGS,
      "Id of the tree to create; empty lets the server choose one. Once the "
      "tree is created, reading it gives the id viewers must join",
      "Id this element announces to the server; empty lets the server "
      "assign one");
  g_object_class_install_property (gobject_class, PROP_K,
      g_param_spec_uint ("k", "k",
          "Maximum number of children of each viewer in the tree (0 = the "
          "server's default)", 0, G_MAXUINT, DEFAULT_K, rw));
  g_object_class_install_property (gobject_class, PROP_K1,
      g_param_spec_uint ("k1", "k1",
          "Maximum number of children of this source, i.e. viewers it sends to "
          "directly (0 = the server's default)", 0, G_MAXUINT, DEFAULT_K1, rw));
  g_object_class_install_property (gobject_class, PROP_VIDEO_CODEC,
      g_param_spec_enum ("video-codec", "Video codec",
          "Codec raw video input is encoded to (once, for the whole tree); "
          "encoded input is sent as it is", GST_TYPE_PEER_TREE_VIDEO_CODEC,
          DEFAULT_VIDEO_CODEC, rw));
  g_object_class_install_property (gobject_class, PROP_SECRET,
      g_param_spec_string ("secret", "Secret",
          "Proves ownership of the tree: a source that comes back (e.g. a restarted "
          "process) within the server's grace period with the same tree-id and secret "
          "takes the tree back, and its viewers keep their places. Empty: a random one, "
          "readable once the element has started", NULL, rw));
  g_object_class_install_property (gobject_class, PROP_REPAIR,
      g_param_spec_boolean ("repair", "Repair",
          "Repair lost packets on each link to a child: NACK and RTX, answered from a "
          "cache of what was sent (1 s), and Opus in-band FEC when this element encodes "
          "audio. FALSE: no NACK, no RTX, no FEC", DEFAULT_REPAIR, rw));
  g_object_class_install_property (gobject_class, PROP_FEC_PERCENTAGE,
      g_param_spec_uint ("fec-percentage", "FEC percentage",
          "Forward error correction for long, lossy links: ULPFEC packets for this share "
          "of the video packets, every packet sent in RED (RFC 2198/5109). Each relay "
          "passes the FEC on to its children untouched, and every viewer rebuilds a lost "
          "packet from it without a round trip. Costs this share of the video bitrate on "
          "every link. 0: no FEC (NACK/RTX repair only)", 0, 100, DEFAULT_FEC_PERCENTAGE,
          rw));
  g_object_class_install_property (gobject_class, PROP_DATA,
      g_param_spec_boolean ("data", "Data",
          "Send data down the tree: every link gets a WebRTC data channel, and the tree "
          "an Ed25519 key that signs each message (send-data, or the buffers of data_%u "
          "pads, which turn this on when requested before the element starts)",
          DEFAULT_DATA, rw));
  g_object_class_install_property (gobject_class, PROP_DATA_ORDERED,
      g_param_spec_boolean ("data-ordered", "Data ordered",
          "Deliver data messages in order (relays pass the choice on to their children). "
          "FALSE: each message as it arrives; a message seen twice or older than the "
          "last 1024 is still rejected", DEFAULT_DATA_ORDERED, rw));
  g_object_class_install_property (gobject_class, PROP_DATA_MAX_RETRANSMITS,
      g_param_spec_int ("data-max-retransmits", "Data max retransmits",
          "Partial reliability: give a data message up after this many retransmissions "
          "on a link (its loss is counted and reported downstream). -1: reliable",
          -1, G_MAXUINT16, DEFAULT_DATA_MAX_RETRANSMITS, rw));
  g_object_class_install_property (gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
          "Tree id, number of streams, the bitrate declared to the server "
          "(bitrate-kbps: what one child link carries, measured every report-interval), "
          "and per child: id, link state, streams, "
          "ICE restarts (ice-restarts), "
          "webrtcbin statistics (webrtc field: RTP, ICE and transport counters) and "
          "repair counters (repair field: nack-count, pli-count, num-rtx-requests, "
          "num-rtx-packets, late-packets-resent); with data, a data field (published, "
          "last-seq, window-messages, window-bytes, resent, dropped, children, "
          "live-children)",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * GstPeerTreeSink::send-data:
   * @sink: the element
   * @data: one message (at most 64 KiB)
   *
   * Signs @data and sends it down the tree (channel 65535, caps
   * application/x-peertree-data, no timestamp). Needs data=true (or a
   * data_%u pad) and a created tree.
   *
   * Returns: TRUE if the message was sent.
   */
  sink_signals[SIGNAL_SEND_DATA] = g_signal_new_class_handler ("send-data",
      G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION,
      G_CALLBACK (gst_peer_tree_sink_send_data), NULL, NULL, NULL, G_TYPE_BOOLEAN, 1,
      G_TYPE_BYTES);

  gst_element_class_add_static_pad_template (element_class, &video_template);
  gst_element_class_add_static_pad_template (element_class, &audio_template);
  gst_element_class_add_static_pad_template (element_class, &data_template);
  gst_element_class_set_static_metadata (element_class, "peertree source",
      "Sink/Network/WebRTC",
      "Encodes once and broadcasts over a tree of WebRTC peers that relay "
      "to each other", "peertree developers");

  element_class->change_state = GST_DEBUG_FUNCPTR (gst_peer_tree_sink_change_state);
  element_class->request_new_pad = GST_DEBUG_FUNCPTR (gst_peer_tree_sink_request_new_pad);
  element_class->release_pad = GST_DEBUG_FUNCPTR (gst_peer_tree_sink_release_pad);
  bin_class->handle_message = GST_DEBUG_FUNCPTR (gst_peer_tree_sink_handle_message);
  bin_class->remove_element = GST_DEBUG_FUNCPTR (gst_peer_tree_sink_remove_element);

  gst_type_mark_as_plugin_api (GST_TYPE_PEER_TREE_VIDEO_CODEC, 0);
}

static void
gst_peer_tree_sink_init (GstPeerTreeSink * self)
{
  static const gchar *const required[] = { "webrtcbin", "nicesrc", "nicesink",
    "dtlssrtpenc", "tee", "queue", "clocksync", NULL
  };

  pt_settings_init (&self->settings);
  self->k = DEFAULT_K;
  self->k1 = DEFAULT_K1;
  self->repair = DEFAULT_REPAIR;
  self->fec_percentage = DEFAULT_FEC_PERCENTAGE;
  self->video_codec = DEFAULT_VIDEO_CODEC;
  g_mutex_init (&self->streams_lock);
  self->streams = g_ptr_array_new ();
  self->data_pads = g_ptr_array_new_with_free_func (data_pad_free);
  self->data_ordered = DEFAULT_DATA_ORDERED;
  self->data_max_retransmits = DEFAULT_DATA_MAX_RETRANSMITS;
  self->next_pt = 96;
  pt_session_init (&self->session, GST_ELEMENT (self), GST_CAT_DEFAULT, &session_callbacks,
      &self->streams_lock);
  self->missing_element = pt_find_missing_element (required);
  GST_OBJECT_FLAG_SET (self, GST_ELEMENT_FLAG_SINK);
}
