/* peertree — signalling-agnostic WebRTC links between tree nodes
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The negotiation and life cycle of one PtLink (pt-link.h). The webrtcbin it
 * negotiates over is made by pt-webrtc.c; the relay branches a sender link
 * takes from the tees are pt-relay.c's.
 */
#include "pt-link.h"
#include "pt-relay.h"
#include "pt-webrtc.h"

#include <string.h>

#ifndef GST_USE_UNSTABLE_API
#define GST_USE_UNSTABLE_API
#endif
#include <gst/webrtc/webrtc.h>
#include <gst/sdp/sdp.h>
#include <gst/rtp/gstrtcpbuffer.h>


GST_DEBUG_CATEGORY_STATIC (pt_link_debug);
#define GST_CAT_DEFAULT pt_link_debug


/* the SSRCs a child reports on (video, audio, their RTX, FEC) */
#define PT_LINK_MAX_REPORTED 8

struct _PtLink {
  gint ref_count;
  GMutex lock;

  /* immutable after pt_link_new() */
  PtLinkRole role;
  gchar *peer_id;
  GstBin *bin;
  GstElement *webrtcbin;
  PtLinkCallbacks callbacks;
  gpointer user_data;
  GDestroyNotify user_data_free;
  GMainContext *context;
  gboolean repair;
  gboolean adaptive_latency;
  guint max_latency_ms;
  GstElement *rtpbin;           /* webrtcbin's (a ref) */

  gulong negotiation_id;
  gulong candidate_id;
  gulong ice_state_id;
  gulong conn_state_id;         /* sender */
  gulong pad_added_id;
  gulong deep_added_id;
  gulong new_transceiver_id;    /* receiver */
  gulong new_jitterbuffer_id;   /* receiver, on rtpbin */
  gulong data_channel_id;       /* receiver: on-data-channel */
  gboolean data;                /* sender: makes a data channel at start */
  gboolean negotiation_deferred;        /* lock: asked before the data channel */
  gboolean data_ordered;
  gint data_max_retransmits;
  GstWebRTCDataChannel *data_channel;   /* sender with data (a ref) */

  /* protected by lock */
  gboolean closed;
  gboolean started;
  PtLinkState state;
  gboolean remote_set;
  gboolean negotiating;         /* sender: offer out, answer not applied yet */
  gboolean renegotiate;         /* sender: negotiation-needed while negotiating */
  GQueue pending_candidates;    /* PtCandidate, before remote_set */
  guint next_sink;
  guint n_remote_streams;
  GPtrArray *branches;          /* PtRelayBranch */
  gboolean keyframe_asked;      /* sender: when the child first connected */
  GPtrArray *taps;              /* PtTap, receiver */
  GstElement *rtxsend;          /* webrtcbin's rtprtxsend (a ref), once made */
  GstElement *rtxreceive;       /* webrtcbin's rtprtxreceive (a ref), once made */
  GstElement *fecdec;           /* receiver: webrtcbin's rtpulpfecdec (a ref), with FEC */
  GstElement *fecenc;           /* sender: webrtcbin's rtpulpfecenc (a ref), with FEC */
  struct _PtCacheGuard *guard;  /* its rtprtxsend's late packets (a ref) */
  guint fec_percentage;         /* sender: ULPFEC made here (the source's links) */
  gboolean remote_fec;          /* receiver: the parent's offer has RED + ULPFEC */
  gboolean remote_data;         /* receiver: the parent's offer has a data channel */
  guint latency_ms;             /* receiver: webrtcbin's latency now */
  GSource *latency_timer;       /* receiver with adaptive latency or repair */

  PtIceGate *ice_gate;          /* with a TURN server: the peer's candidates pass it */

  /* liveness and ICE restart (pt-link.h). state (above) is what the owner
   * was told; ice_state is webrtcbin's. Under lock; timers in context. */
  PtLinkState ice_state;
  gint rx_packets;              /* atomic: packets its nicesrc received */
  gint rx_seen;                 /* rx_packets at the last tick */
  gint64 last_rx_us;            /* monotonic time rx_packets last moved */
  gint64 connected_since_us;    /* ICE connected since (0: not connected) */
  guint stall_ms;
  gboolean stalled;             /* connected, but nothing received for stall_ms */
  /* sender: what the child reports (pt-link.h) */
  gboolean peer_stalled;        /* under lock: its reports showed no progress */
  gint rtp_sent;                /* atomic: RTP buffers we sent the child */
  gint rb_moved;                /* atomic: report blocks that moved on */
  /* the RTCP probe's (one streaming thread): the sequence last reported, per SSRC */
  guint32 rb_ssrc[PT_LINK_MAX_REPORTED];
  guint32 rb_seq[PT_LINK_MAX_REPORTED];
  guint n_rb;
  /* loop thread only */
  gboolean probed_rtcp, probed_rtp;     /* the probes on rtpbin's pads are in */
  gint rtp_sent_seen;           /* rtp_sent at the last look */
  gint rb_moved_seen;           /* rb_moved at the last look */
  gint64 peer_progress_us;      /* when they last moved on (or we sent nothing) */
  gboolean was_connected;       /* ICE connected once: restarts are worth trying */
  gboolean in_trouble;          /* disconnected or failed after being connected */
  gboolean gave_up;             /* restarts did not help: reported failed */
  guint attempts;               /* ICE restarts in this episode of trouble */
  guint ice_restarts;           /* ICE restarts, all told (stats) */
  gboolean restart_offer;       /* sender: the next offer restarts ICE */
  gboolean restart_pending;     /* sender: restart once the answer is in */
  gboolean restart_answer;      /* receiver: the next answer restarts ICE */
  gchar *remote_ufrag;          /* the remote description's ice-ufrag */
  guint cand_mline;             /* the mline our candidates go with */
  GSource *liveness_timer;
  GSource *restart_timer;       /* sender: next attempt; receiver: give up */
};

/* The relay tap of one received stream (receiver link): a probe on the
 * sink pad of the stream's jitterbuffer pushes every packet, as it arrives
 * (repaired ones included), through @proxy, a src pad of ours that feeds
 * the owner's relay tee. See pt_link_get_relay_pad(). */
typedef struct {
  GstElement *jitterbuffer;     /* a ref */
  GstPad *sink;                 /* its sink pad (a ref) */
  gulong probe_id;
  guint32 ssrc;
  GstPad *proxy;                /* a ref, active, no parent */
  GstPad *src;                  /* webrtcbin's src pad for the stream, once added (a ref) */
  gint ready;                   /* atomic: forward packets through proxy */
  /* the probe's (one streaming thread): sequence numbers forwarded */
  gboolean have_top;
  guint16 top;                  /* the highest */
  guint64 seen[2];              /* bit i: top - i (0 ≤ i < 128) */
} PtTap;

/* The relay forwards a sequence number once, and none older than the
 * SRTP replay window of the child links (libsrtp's 128): a repeated index
 * (the original and its repair both arrive, or two repairs) makes the
 * child link's srtpenc fail the whole pipeline ("replay check failed").
 * The jitterbuffer drops such packets itself; the tap runs before it. */
#define PT_TAP_WINDOW 128

typedef struct {
  guint mline;
  gchar *candidate;
} PtCandidate;

static void
pt_candidate_free (PtCandidate * c)
{
  g_free (c->candidate);
  g_free (c);
}

static void
pt_link_init_debug (void)
{
  static gsize once = 0;

  if (g_once_init_enter (&once)) {
    GST_DEBUG_CATEGORY_INIT (pt_link_debug, "ptlink", 0, "peertree WebRTC links");
    g_once_init_leave (&once, 1);
  }
}

const gchar *
pt_link_state_to_string (PtLinkState state)
{
  switch (state) {
    case PT_LINK_STATE_NEW:
      return "new";
    case PT_LINK_STATE_CONNECTING:
      return "connecting";
    case PT_LINK_STATE_CONNECTED:
      return "connected";
    case PT_LINK_STATE_DISCONNECTED:
      return "disconnected";
    case PT_LINK_STATE_FAILED:
      return "failed";
    case PT_LINK_STATE_CLOSED:
      return "closed";
  }
  return "unknown";
}


/* ---------------------------------------------------------------------- */
/* callback marshalling */

typedef enum {
  PT_EVENT_DESCRIPTION,
  PT_EVENT_CANDIDATE,
  PT_EVENT_STATE,
  PT_EVENT_ERROR,
} PtEventKind;

typedef struct {
  PtLink *link;
  PtEventKind kind;
  gchar *str1;
  gchar *str2;
  guint num;
  PtLinkState state;
  GError *error;
} PtEvent;

static void
pt_event_free (gpointer data)
{
  PtEvent *ev = data;

  pt_link_unref (ev->link);
  g_free (ev->str1);
  g_free (ev->str2);
  g_clear_error (&ev->error);
  g_free (ev);
}

static void link_update_state (PtLink * link);

static gboolean
pt_event_dispatch (gpointer data)
{
  PtEvent *ev = data;
  PtLink *link = ev->link;
  gboolean closed;

  g_mutex_lock (&link->lock);
  closed = link->closed;
  g_mutex_unlock (&link->lock);
  if (closed)
    return G_SOURCE_REMOVE;

  switch (ev->kind) {
    case PT_EVENT_DESCRIPTION:
      if (link->callbacks.local_description)
        link->callbacks.local_description (link, ev->str1, ev->str2, link->user_data);
      break;
    case PT_EVENT_CANDIDATE:
      if (link->callbacks.local_candidate)
        link->callbacks.local_candidate (link, ev->num, ev->str1, link->user_data);
      break;
    case PT_EVENT_STATE:
      link_update_state (link);
      break;
    case PT_EVENT_ERROR:
      if (link->callbacks.error)
        link->callbacks.error (link, ev->error, link->user_data);
      break;
  }
  return G_SOURCE_REMOVE;
}

/* Always queue (never run inline) so events keep their order: the SDP is
 * handed out before the candidates that follow it. */
static void
pt_link_post (PtLink * link, PtEvent * ev)
{
  g_autoptr (GSource) source = g_idle_source_new ();

  ev->link = pt_link_ref (link);
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_callback (source, pt_event_dispatch, ev, pt_event_free);
  g_source_set_static_name (source, "[peertree] link event");
  g_source_attach (source, link->context);
}

static void
pt_link_post_error (PtLink * link, GError * error /* transfer full */ )
{
  PtEvent *ev = g_new0 (PtEvent, 1);

  GST_WARNING ("link %s: %s", link->peer_id, error->message);
  ev->kind = PT_EVENT_ERROR;
  ev->error = error;
  pt_link_post (link, ev);
}

static gboolean
pt_link_is_closed (PtLink * link)
{
  gboolean closed;

  g_mutex_lock (&link->lock);
  closed = link->closed;
  g_mutex_unlock (&link->lock);
  return closed;
}

/* ---------------------------------------------------------------------- */
/* negotiation */

/* Checks a finished promise; the reply (may be NULL on success) goes to
 * @out_reply. Returns FALSE with @error set on failure. */
static gboolean
promise_reply (GstPromise * promise, const gchar * what, const GstStructure ** out_reply,
    GError ** error)
{
  const GstStructure *reply;

  if (out_reply)
    *out_reply = NULL;
  if (gst_promise_wait (promise) != GST_PROMISE_RESULT_REPLIED) {
    g_set_error (error, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED,
        "%s: no reply from webrtcbin", what);
    return FALSE;
  }
  reply = gst_promise_get_reply (promise);
  if (reply && gst_structure_has_field (reply, "error")) {
    g_autoptr (GError) err = NULL;

    gst_structure_get (reply, "error", G_TYPE_ERROR, &err, NULL);
    g_set_error (error, GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED,
        "%s failed: %s", what, err ? err->message : "unknown error");
    return FALSE;
  }
  if (out_reply)
    *out_reply = reply;
  return TRUE;
}

static void
on_local_description_set (GstPromise * promise, gpointer user_data)
{
  PtLink *link = user_data;
  GError *error = NULL;

  if (!promise_reply (promise, "set-local-description", NULL, &error)
      && !pt_link_is_closed (link))
    pt_link_post_error (link, error);
  else
    g_clear_error (&error);
  gst_promise_unref (promise);
}

/* Posts the description, then applies it: the SDP event is queued before any
 * candidate that gathering (started by set-local-description) produces. */
static void
publish_and_set_local (PtLink * link, GstWebRTCSessionDescription * desc)
{
  PtEvent *ev = g_new0 (PtEvent, 1);
  GstPromise *promise;

  ev->kind = PT_EVENT_DESCRIPTION;
  ev->str1 = g_strdup (gst_webrtc_sdp_type_to_string (desc->type));
  ev->str2 = gst_sdp_message_as_text (desc->sdp);
  GST_DEBUG ("link %s: local %s\n%s", link->peer_id, ev->str1, ev->str2);

  /* Queued in webrtcbin before the description leaves: webrtcbin runs its
   * operations in order, so the peer's reply, however fast, is applied after
   * it. (Published first, a busy machine let an answer arrive while the
   * offer was not set yet: "Not in the correct state (stable) for setting
   * remote answer description", and the child was dropped.) */
  promise = gst_promise_new_with_change_func (on_local_description_set,
      pt_link_ref (link), (GDestroyNotify) pt_link_unref);
  g_signal_emit_by_name (link->webrtcbin, "set-local-description", desc, promise);
  pt_link_post (link, ev);
}

static void post_local_candidates (PtLink * link);

static void
on_description_created (GstPromise * promise, gpointer user_data)
{
  PtLink *link = user_data;
  const gchar *field = link->role == PT_LINK_ROLE_SENDER ? "offer" : "answer";
  const GstStructure *reply;
  GstWebRTCSessionDescription *desc = NULL;
  GError *error = NULL;

  if (promise_reply (promise, link->role == PT_LINK_ROLE_SENDER ?
          "create-offer" : "create-answer", &reply, &error) && reply)
    gst_structure_get (reply, field, GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &desc, NULL);
  gst_promise_unref (promise);

  if (pt_link_is_closed (link)) {
    g_clear_error (&error);
  } else if (desc == NULL) {
    if (error == NULL)
      error = g_error_new (GST_STREAM_ERROR, GST_STREAM_ERROR_FAILED,
          "webrtcbin produced no %s", field);
    pt_link_post_error (link, error);
  } else {
    gboolean restart;

    g_mutex_lock (&link->lock);
    if (link->role == PT_LINK_ROLE_SENDER) {
      restart = link->restart_offer;
      link->restart_offer = FALSE;
    } else {
      restart = link->restart_answer;
      link->restart_answer = FALSE;
    }
    g_mutex_unlock (&link->lock);
    if (restart) {
      /* webrtcbin 1.22 reuses the last credentials (pt-webrtc.h): new ones,
       * which set-local-description hands to libnice. The offerer's agent
       * restarts now, before that (the answerer's did before the offer
       * was applied) */
      pt_webrtc_sdp_new_ice_credentials (desc->sdp);
      if (link->role == PT_LINK_ROLE_SENDER)
        pt_webrtc_restart_ice (link->webrtcbin);
    }
    publish_and_set_local (link, desc);
    if (restart)
      post_local_candidates (link);
  }
  if (desc)
    gst_webrtc_session_description_free (desc);
}

static void
create_description (PtLink * link)
{
  GstPromise *promise = gst_promise_new_with_change_func (on_description_created,
      pt_link_ref (link), (GDestroyNotify) pt_link_unref);

  g_signal_emit_by_name (link->webrtcbin,
      link->role == PT_LINK_ROLE_SENDER ? "create-offer" : "create-answer", NULL, promise);
}

static void
on_negotiation_needed (GstElement * webrtcbin, gpointer user_data)
{
  PtLink *link = user_data;
  gboolean go = FALSE;

  (void) webrtcbin;

  g_mutex_lock (&link->lock);
  if (!link->closed && link->role == PT_LINK_ROLE_SENDER && link->data
      && link->data_channel == NULL) {
    /* the offer waits for the data channel (an offer without it, or without
     * any m-line at all for a tree of data alone, helps nobody) */
    link->negotiation_deferred = TRUE;
  } else if (!link->closed && link->role == PT_LINK_ROLE_SENDER) {
    if (link->negotiating) {
      link->renegotiate = TRUE;
    } else {
      link->negotiating = TRUE;
      go = TRUE;
    }
  }
  g_mutex_unlock (&link->lock);

  GST_DEBUG ("link %s: negotiation needed%s", link->peer_id, go ? "" : " (deferred)");
  if (go)
    create_description (link);
}

static void
on_remote_description_set (GstPromise * promise, gpointer user_data)
{
  PtLink *link = user_data;
  GError *error = NULL;
  GQueue pending = G_QUEUE_INIT;
  gboolean ok, again = FALSE, closed;

  ok = promise_reply (promise, "set-remote-description", NULL, &error);
  gst_promise_unref (promise);

  g_mutex_lock (&link->lock);
  closed = link->closed;
  if (ok && !closed) {
    link->remote_set = TRUE;
    pending = link->pending_candidates;
    g_queue_init (&link->pending_candidates);
    if (link->role == PT_LINK_ROLE_SENDER) {
      link->negotiating = FALSE;
      if (link->renegotiate || link->restart_pending) {
        link->renegotiate = FALSE;
        link->negotiating = again = TRUE;
        if (link->restart_pending) {
          link->restart_pending = FALSE;
          link->restart_offer = TRUE;
          link->ice_restarts++;
        }
      }
    }
  }
  g_mutex_unlock (&link->lock);

  if (closed) {
    g_clear_error (&error);
    return;
  }
  if (!ok) {
    pt_link_post_error (link, error);
    return;
  }

  for (GList * l = pending.head; l; l = l->next) {
    PtCandidate *c = l->data;

    g_signal_emit_by_name (link->webrtcbin, "add-ice-candidate", c->mline, c->candidate);
  }
  g_queue_clear_full (&pending, (GDestroyNotify) pt_candidate_free);

  if (link->role == PT_LINK_ROLE_RECEIVER)
    create_description (link);  /* the answer */
  else if (again)
    create_description (link);  /* a new offer */
}

static void link_restart_offered (PtLink * link);

void
pt_link_set_remote_description (PtLink * link, const gchar * type, const gchar * sdp)
{
  GstSDPMessage *msg = NULL;
  GstWebRTCSessionDescription *desc;
  GstPromise *promise;
  GstWebRTCSDPType sdp_type;
  const gchar *expected = link->role == PT_LINK_ROLE_SENDER ? "answer" : "offer";

  g_return_if_fail (link != NULL);
  g_return_if_fail (type != NULL && sdp != NULL);

  if (pt_link_is_closed (link))
    return;

  if (g_strcmp0 (type, expected) != 0) {
    pt_link_post_error (link, g_error_new (GST_STREAM_ERROR, GST_STREAM_ERROR_WRONG_TYPE,
            "Peer %s sent an SDP %s, expected an %s", link->peer_id, type, expected));
    return;
  }
  sdp_type = link->role == PT_LINK_ROLE_SENDER ?
      GST_WEBRTC_SDP_TYPE_ANSWER : GST_WEBRTC_SDP_TYPE_OFFER;

  if (gst_sdp_message_new_from_text (sdp, &msg) != GST_SDP_OK || msg == NULL
      || gst_sdp_message_medias_len (msg) == 0) {
    if (msg)
      gst_sdp_message_free (msg);
    pt_link_post_error (link, g_error_new (GST_STREAM_ERROR, GST_STREAM_ERROR_DECODE,
            "Peer %s sent an invalid SDP %s", link->peer_id, type));
    return;
  }

  if (link->role == PT_LINK_ROLE_RECEIVER) {
    guint n = 0;
    gboolean fec = FALSE, data = FALSE;

    for (guint i = 0; i < gst_sdp_message_medias_len (msg); i++) {
      const GstSDPMedia *media = gst_sdp_message_get_media (msg, i);

      for (guint a = 0; a < gst_sdp_media_attributes_len (media); a++) {
        const GstSDPAttribute *attr = gst_sdp_media_get_attribute (media, a);

        if (g_strcmp0 (attr->key, "rtpmap") == 0 && attr->value &&
            g_strrstr (attr->value, " ulpfec/"))
          fec = TRUE;
      }
      /* port 0 rejects an m-line, but for one marked bundle-only (every
       * m-line after the first of a max-bundle offer, webrtcbin's and
       * browsers'): it flows on the first one's transport */
      if (gst_sdp_media_get_port (media) == 0
          && gst_sdp_media_get_attribute_val (media, "bundle-only") == NULL)
        continue;
      if (gst_sdp_media_get_attribute_val (media, "recvonly")
          || gst_sdp_media_get_attribute_val (media, "inactive"))
        continue;
      if (g_strcmp0 (gst_sdp_media_get_media (media), "application") == 0) {
        data = TRUE;
        continue;
      }
      n++;
    }
    g_mutex_lock (&link->lock);
    link->n_remote_streams = n;
    link->remote_fec = fec;
    link->remote_data = data;
    g_mutex_unlock (&link->lock);
  }

  {
    const gchar *ufrag = pt_webrtc_sdp_ice_ufrag (msg);
    gboolean restart = FALSE;

    g_mutex_lock (&link->lock);
    if (link->role == PT_LINK_ROLE_RECEIVER && link->remote_set && ufrag &&
        link->remote_ufrag && g_strcmp0 (ufrag, link->remote_ufrag) != 0) {
      restart = TRUE;
      link->restart_answer = TRUE;
      link->ice_restarts++;
      link->attempts++;
    }
    g_free (link->remote_ufrag);
    link->remote_ufrag = g_strdup (ufrag);
    g_mutex_unlock (&link->lock);
    if (restart) {
      GST_INFO ("link %s: the peer restarts ICE (new credentials)", link->peer_id);
      /* before webrtcbin gives libnice the offer's credentials */
      pt_webrtc_restart_ice (link->webrtcbin);
      link_restart_offered (link);
    }
  }

  GST_DEBUG ("link %s: remote %s\n%s", link->peer_id, type, sdp);
  desc = gst_webrtc_session_description_new (sdp_type, msg);
  promise = gst_promise_new_with_change_func (on_remote_description_set,
      pt_link_ref (link), (GDestroyNotify) pt_link_unref);
  g_signal_emit_by_name (link->webrtcbin, "set-remote-description", desc, promise);
  gst_webrtc_session_description_free (desc);
}

static void
add_remote_candidate (guint mline_index, const gchar * candidate, gpointer user_data)
{
  PtLink *link = user_data;
  gboolean now;

  g_mutex_lock (&link->lock);
  if (link->closed) {
    g_mutex_unlock (&link->lock);
    return;
  }
  now = link->remote_set;
  if (!now) {
    PtCandidate *c = g_new0 (PtCandidate, 1);

    c->mline = mline_index;
    c->candidate = g_strdup (candidate);
    g_queue_push_tail (&link->pending_candidates, c);
  }
  g_mutex_unlock (&link->lock);

  if (now)
    g_signal_emit_by_name (link->webrtcbin, "add-ice-candidate", mline_index, candidate);
}

void
pt_link_add_remote_candidate (PtLink * link, guint mline_index, const gchar * candidate)
{
  g_return_if_fail (link != NULL);

  /* an empty candidate is an end-of-candidates marker: nothing to do */
  if (candidate == NULL || *candidate == '\0')
    return;
  if (link->ice_gate)
    pt_ice_gate_push (link->ice_gate, mline_index, candidate);
  else
    add_remote_candidate (mline_index, candidate, link);
}

static void
on_ice_candidate (GstElement * webrtcbin, guint mline, gchar * candidate, gpointer user_data)
{
  PtLink *link = user_data;
  PtEvent *ev;

  (void) webrtcbin;

  if (candidate == NULL || *candidate == '\0' || pt_link_is_closed (link))
    return;
  g_mutex_lock (&link->lock);
  link->cand_mline = mline;
  g_mutex_unlock (&link->lock);
  ev = g_new0 (PtEvent, 1);
  ev->kind = PT_EVENT_CANDIDATE;
  ev->num = mline;
  ev->str1 = g_strdup (candidate);
  pt_link_post (link, ev);
}

/* A sender's child is reachable (DTLS done, SRTP keys set): each relay
 * branch asks upstream for a keyframe once (see
 * pt_relay_request_keyframe_on_connect). The branches are taken under the
 * lock, the requests made without it. */
static void
on_connection_state (GObject * webrtcbin, GParamSpec * pspec, gpointer user_data)
{
  PtLink *link = user_data;
  GstWebRTCPeerConnectionState state;
  /* (tee, queue sink pad) of each branch, taken under the lock */
  g_autoptr (GPtrArray) pairs = g_ptr_array_new_with_free_func (gst_object_unref);

  (void) pspec;
  g_object_get (webrtcbin, "connection-state", &state, NULL);
  if (state != GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED)
    return;
  g_mutex_lock (&link->lock);
  if (!link->closed && !link->keyframe_asked) {
    link->keyframe_asked = TRUE;
    for (guint i = 0; i < link->branches->len; i++) {
      GstElement *tee;
      GstPad *qsink;

      pt_relay_branch_get_pads (g_ptr_array_index (link->branches, i), &tee, &qsink);
      g_ptr_array_add (pairs, tee);
      g_ptr_array_add (pairs, qsink);
    }
  }
  g_mutex_unlock (&link->lock);

  for (guint i = 0; i + 1 < pairs->len; i += 2)
    pt_relay_request_keyframe_on_connect (g_ptr_array_index (pairs, i),
        g_ptr_array_index (pairs, i + 1));
}

static void
on_ice_connection_state (GObject * webrtcbin, GParamSpec * pspec, gpointer user_data)
{
  PtLink *link = user_data;
  GstWebRTCICEConnectionState ice_state;
  PtLinkState state;
  gboolean changed = FALSE;

  (void) pspec;

  g_object_get (webrtcbin, "ice-connection-state", &ice_state, NULL);
  switch (ice_state) {
    case GST_WEBRTC_ICE_CONNECTION_STATE_NEW:
      state = PT_LINK_STATE_NEW;
      break;
    case GST_WEBRTC_ICE_CONNECTION_STATE_CHECKING:
      state = PT_LINK_STATE_CONNECTING;
      break;
    case GST_WEBRTC_ICE_CONNECTION_STATE_CONNECTED:
    case GST_WEBRTC_ICE_CONNECTION_STATE_COMPLETED:
      state = PT_LINK_STATE_CONNECTED;
      break;
    case GST_WEBRTC_ICE_CONNECTION_STATE_FAILED:
      state = PT_LINK_STATE_FAILED;
      break;
    case GST_WEBRTC_ICE_CONNECTION_STATE_DISCONNECTED:
      state = PT_LINK_STATE_DISCONNECTED;
      break;
    case GST_WEBRTC_ICE_CONNECTION_STATE_CLOSED:
    default:
      state = PT_LINK_STATE_CLOSED;
      break;
  }

  g_mutex_lock (&link->lock);
  if (!link->closed && link->ice_state != state) {
    link->ice_state = state;
    changed = TRUE;
  }
  g_mutex_unlock (&link->lock);

  if (changed) {
    PtEvent *ev = g_new0 (PtEvent, 1);

    GST_DEBUG ("link %s: ICE %s", link->peer_id, pt_link_state_to_string (state));
    ev->kind = PT_EVENT_STATE;
    ev->state = state;
    pt_link_post (link, ev);
  }
}

/* ---------------------------------------------------------------------- */
/* liveness and ICE restart (the owner's context) */

/* A restart timer (replacing any): with the lock */
static gboolean on_restart_timer (gpointer data);

static void
set_restart_timer_locked (PtLink * link, guint ms)
{
  if (link->restart_timer) {
    g_source_destroy (link->restart_timer);
    g_source_unref (link->restart_timer);
  }
  link->restart_timer = g_timeout_source_new (ms);
  g_source_set_callback (link->restart_timer, on_restart_timer, pt_link_ref (link),
      (GDestroyNotify) pt_link_unref);
  g_source_set_static_name (link->restart_timer, "[peertree] ICE restart");
  g_source_attach (link->restart_timer, link->context);
}

static void
clear_restart_timer_locked (PtLink * link)
{
  if (link->restart_timer) {
    g_source_destroy (link->restart_timer);
    g_clear_pointer (&link->restart_timer, g_source_unref);
  }
}

/* The state the owner sees, from webrtcbin's ICE state and the liveness
 * check: a connected link that receives nothing is disconnected; one that
 * was connected and is in trouble (disconnected, or failed) stays
 * disconnected while ICE restarts may save it, and fails when they did not
 * (PT_LINK_ICE_RESTART_*). A link that never connected fails at once. */
static void
link_update_state (PtLink * link)
{
  PtLinkState eff, report;
  gboolean changed, begin = FALSE, end = FALSE;
  guint attempts;

  g_mutex_lock (&link->lock);
  if (link->closed) {
    g_mutex_unlock (&link->lock);
    return;
  }
  eff = link->ice_state;
  if (eff == PT_LINK_STATE_CONNECTED)
    link->was_connected = TRUE;
  if ((link->stalled || link->peer_stalled) && eff != PT_LINK_STATE_FAILED &&
      eff != PT_LINK_STATE_CLOSED)
    eff = PT_LINK_STATE_DISCONNECTED;
  if ((eff == PT_LINK_STATE_DISCONNECTED || eff == PT_LINK_STATE_FAILED) &&
      link->was_connected && !link->in_trouble && !link->gave_up) {
    begin = link->in_trouble = TRUE;
    link->attempts = 0;
    /* the offerer restarts after a grace (at once if ICE failed); the
     * answerer waits for its offers */
    if (link->role == PT_LINK_ROLE_SENDER)
      set_restart_timer_locked (link, eff == PT_LINK_STATE_FAILED ? 0 :
          PT_LINK_ICE_RESTART_GRACE_MS);
    else
      set_restart_timer_locked (link, PT_LINK_ICE_RESTART_WAIT_MS);
  } else if (link->in_trouble && !link->gave_up && eff == PT_LINK_STATE_CONNECTED) {
    link->in_trouble = FALSE;
    end = TRUE;
    clear_restart_timer_locked (link);
  }
  attempts = link->attempts;
  if (link->gave_up)
    report = PT_LINK_STATE_FAILED;
  else if (link->in_trouble)
    report = PT_LINK_STATE_DISCONNECTED;
  else
    report = eff;
  changed = report != link->state;
  link->state = report;
  g_mutex_unlock (&link->lock);

  if (begin)
    GST_INFO ("link %s: %s after being connected: ICE restart %s", link->peer_id,
        pt_link_state_to_string (eff), link->role == PT_LINK_ROLE_SENDER ?
        "follows" : "awaited from the peer");
  if (end)
    GST_INFO ("link %s: connected again%s", link->peer_id, attempts ?
        " after an ICE restart" : "");
  if (changed) {
    GST_DEBUG ("link %s: %s", link->peer_id, pt_link_state_to_string (report));
    if (link->callbacks.state_changed)
      link->callbacks.state_changed (link, report, link->user_data);
  }
}

/* Our local candidates again, after the description of a restart: libnice
 * gathers once per stream, and the peer's restart dropped them. */
static void
post_local_candidates (PtLink * link)
{
  g_autoptr (GPtrArray) cands = pt_webrtc_local_candidates (link->webrtcbin);
  guint mline;

  g_mutex_lock (&link->lock);
  mline = link->cand_mline;
  g_mutex_unlock (&link->lock);
  GST_DEBUG ("link %s: %u local candidates again", link->peer_id, cands->len);
  for (guint i = 0; i < cands->len; i++) {
    PtEvent *ev = g_new0 (PtEvent, 1);

    ev->kind = PT_EVENT_CANDIDATE;
    ev->num = mline;
    ev->str1 = g_strdup (g_ptr_array_index (cands, i));
    pt_link_post (link, ev);
  }
}

/* sender: an offer with new ICE credentials (or once the one out is
 * answered) */
static void
link_restart_ice (PtLink * link)
{
  gboolean go = FALSE;
  guint n;

  g_mutex_lock (&link->lock);
  if (link->closed) {
    g_mutex_unlock (&link->lock);
    return;
  }
  if (link->negotiating) {
    link->restart_pending = TRUE;
  } else {
    link->negotiating = link->restart_offer = go = TRUE;
    link->ice_restarts++;
  }
  n = link->attempts;
  g_mutex_unlock (&link->lock);

  GST_INFO ("link %s: ICE restart, attempt %u of %u%s", link->peer_id, n,
      PT_LINK_ICE_RESTART_ATTEMPTS, go ? "" : " (once the offer out is answered)");
  if (go)
    create_description (link);
}

/* receiver: the peer restarts ICE; while in trouble, its offer gets time to
 * work (a bounded number of times) */
static void
link_restart_offered (PtLink * link)
{
  g_mutex_lock (&link->lock);
  if (link->in_trouble && !link->gave_up && link->attempts <= PT_LINK_ICE_RESTART_ATTEMPTS)
    set_restart_timer_locked (link, PT_LINK_ICE_RESTART_INTERVAL_MS + 1500);
  g_mutex_unlock (&link->lock);
}

static gboolean
on_restart_timer (gpointer data)
{
  PtLink *link = data;
  gboolean restart = FALSE;

  g_mutex_lock (&link->lock);
  if (link->restart_timer == NULL || g_source_is_destroyed (g_main_current_source ())) {
    g_mutex_unlock (&link->lock);
    return G_SOURCE_REMOVE;
  }
  g_clear_pointer (&link->restart_timer, g_source_unref);
  if (link->closed || !link->in_trouble || link->gave_up) {
    g_mutex_unlock (&link->lock);
    return G_SOURCE_REMOVE;
  }
  if (link->role == PT_LINK_ROLE_SENDER && link->attempts < PT_LINK_ICE_RESTART_ATTEMPTS) {
    link->attempts++;
    restart = TRUE;
    set_restart_timer_locked (link, PT_LINK_ICE_RESTART_INTERVAL_MS);
  } else {
    link->gave_up = TRUE;
  }
  g_mutex_unlock (&link->lock);

  if (restart) {
    link_restart_ice (link);
  } else {
    GST_INFO ("link %s: ICE restarts did not bring it back: failed", link->peer_id);
    link_update_state (link);
  }
  return G_SOURCE_REMOVE;
}

/* sender: RTCP from the child (one streaming thread): each report block
 * whose highest sequence number changed for its SSRC is counted (a child
 * that forgot our SSRC during an outage starts again lower). */
static GstPadProbeReturn
on_child_rtcp (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  PtLink *link = user_data;
  GstRTCPBuffer rtcp = GST_RTCP_BUFFER_INIT;
  GstRTCPPacket packet;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  gint moved = 0;

  (void) pad;
  if (buf == NULL || !gst_rtcp_buffer_validate_reduced (buf) ||
      !gst_rtcp_buffer_map (buf, GST_MAP_READ, &rtcp))
    return GST_PAD_PROBE_OK;
  for (gboolean more = gst_rtcp_buffer_get_first_packet (&rtcp, &packet); more;
      more = gst_rtcp_packet_move_to_next (&packet)) {
    GstRTCPType type = gst_rtcp_packet_get_type (&packet);
    guint n;

    if (type != GST_RTCP_TYPE_RR && type != GST_RTCP_TYPE_SR)
      continue;
    n = gst_rtcp_packet_get_rb_count (&packet);
    for (guint i = 0; i < n; i++) {
      guint32 ssrc, seq, jitter, lsr, dlsr;
      guint8 fraction;
      gint32 lost;
      guint k;

      gst_rtcp_packet_get_rb (&packet, i, &ssrc, &fraction, &lost, &seq, &jitter, &lsr, &dlsr);
      for (k = 0; k < link->n_rb && link->rb_ssrc[k] != ssrc; k++);
      if (k == PT_LINK_MAX_REPORTED)
        k = link->n_rb = 0;     /* full (SSRCs of sources gone): start over */
      if (k == link->n_rb) {
        link->n_rb++;
        link->rb_ssrc[k] = ssrc;
      } else if (seq == link->rb_seq[k]) {
        continue;
      }
      link->rb_seq[k] = seq;
      moved++;
    }
  }
  gst_rtcp_buffer_unmap (&rtcp);
  if (moved)
    g_atomic_int_add (&link->rb_moved, moved);
  return GST_PAD_PROBE_OK;
}

/* sender: RTP to the child (a streaming thread) */
static GstPadProbeReturn
on_child_rtp (GstPad * pad, GstPadProbeInfo * info, gpointer user_data)
{
  PtLink *link = user_data;

  (void) pad;
  if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_BUFFER_LIST)
    g_atomic_int_add (&link->rtp_sent,
        (gint) gst_buffer_list_length (GST_PAD_PROBE_INFO_BUFFER_LIST (info)));
  else
    g_atomic_int_inc (&link->rtp_sent);
  return GST_PAD_PROBE_OK;
}

/* sender: probes one of rtpbin's session-0 pads (BUNDLE: one session for
 * every stream) once webrtcbin has made it; TRUE once it is probed. The
 * link, not a ref: it outlives its webrtcbin's streaming, as for count_rx.
 * Loop thread. */
static gboolean
probe_rtpbin_pad (PtLink * link, const gchar * name, GstPadProbeType type,
    GstPadProbeCallback callback)
{
  g_autoptr (GstPad) pad = link->rtpbin ? gst_element_get_static_pad (link->rtpbin, name) : NULL;

  if (pad)
    gst_pad_add_probe (pad, type, callback, link, NULL);
  return pad != NULL;
}

/* sender, every tick while connected (loop thread): does the child receive
 * what we send? (pt-link.h) Returns whether its reports have shown nothing
 * received for PT_LINK_PEER_STALL_MS, given @stalled, the answer so far. */
static gboolean
check_peer_reports (PtLink * link, gint64 now, gboolean stalled)
{
  gint sent = g_atomic_int_get (&link->rtp_sent);
  gint moved = g_atomic_int_get (&link->rb_moved);
  gboolean progress = moved != link->rb_moved_seen;

  if (!link->probed_rtcp)
    link->probed_rtcp = probe_rtpbin_pad (link, "recv_rtcp_sink_0", GST_PAD_PROBE_TYPE_BUFFER,
        on_child_rtcp);
  if (!link->probed_rtp)
    link->probed_rtp = probe_rtpbin_pad (link, "send_rtp_sink_0", GST_PAD_PROBE_TYPE_BUFFER |
        GST_PAD_PROBE_TYPE_BUFFER_LIST, on_child_rtp);
  /* nothing sent (or no probe yet): nothing to report on */
  if (progress || sent == link->rtp_sent_seen || link->peer_progress_us == 0)
    link->peer_progress_us = now;
  link->rtp_sent_seen = sent;
  link->rb_moved_seen = moved;
  if (progress)
    return FALSE;
  return stalled || now - link->peer_progress_us > PT_LINK_PEER_STALL_MS * (gint64) 1000;
}

/* Every PT_LINK_LIVENESS_TICK_MS: has the link received anything? */
static gboolean
on_liveness_tick (gpointer data)
{
  PtLink *link = data;
  gint rx = g_atomic_int_get (&link->rx_packets);
  gint64 now = g_get_monotonic_time ();
  gboolean changed = FALSE, stalled, check_peer, peer_stalled;

  g_mutex_lock (&link->lock);
  if (link->closed) {
    g_mutex_unlock (&link->lock);
    return G_SOURCE_REMOVE;
  }
  if (link->ice_state != PT_LINK_STATE_CONNECTED)
    link->connected_since_us = 0;
  else if (link->connected_since_us == 0)
    link->connected_since_us = now;
  if (rx != link->rx_seen) {
    link->rx_seen = rx;
    link->last_rx_us = now;
    /* only packets end a stall, not ICE connecting again */
    changed = link->stalled;
    link->stalled = FALSE;
  } else if (!link->stalled && link->connected_since_us &&
      now - MAX (link->last_rx_us, link->connected_since_us) > link->stall_ms * (gint64) 1000) {
    changed = link->stalled = TRUE;
  }
  stalled = link->stalled;
  /* (with repair only: without it, reports come every 5 s) */
  check_peer = link->role == PT_LINK_ROLE_SENDER && link->repair &&
      link->connected_since_us != 0;
  peer_stalled = link->peer_stalled;
  g_mutex_unlock (&link->lock);

  if (changed) {
    if (stalled)
      GST_INFO ("link %s: nothing received for %u ms", link->peer_id, link->stall_ms);
    else
      GST_INFO ("link %s: receiving again", link->peer_id);
  }
  if (!check_peer)
    link->peer_progress_us = 0; /* the window starts again once connected */
  else if (check_peer_reports (link, now, peer_stalled) != peer_stalled) {
    peer_stalled = !peer_stalled;
    g_mutex_lock (&link->lock);
    link->peer_stalled = peer_stalled;
    g_mutex_unlock (&link->lock);
    if (peer_stalled)
      GST_INFO ("link %s: the peer's reports show nothing received for %u ms", link->peer_id,
          PT_LINK_PEER_STALL_MS);
    else
      GST_INFO ("link %s: the peer's reports move on again", link->peer_id);
    changed = TRUE;
  }
  if (changed)
    link_update_state (link);
  return G_SOURCE_CONTINUE;
}

guint
pt_link_get_ice_restarts (PtLink * link)
{
  guint n;

  g_mutex_lock (&link->lock);
  n = link->ice_restarts;
  g_mutex_unlock (&link->lock);
  return n;
}

static PtTap *pair_tap (PtLink * link, GstPad * pad);

/* receiver: the parent's data channel, announced (DCEP) once SCTP is up */
static void
on_data_channel (GstElement * webrtcbin, GstWebRTCDataChannel * channel, gpointer user_data)
{
  PtLink *link = user_data;
  g_autofree gchar *label = NULL;

  (void) webrtcbin;
  g_object_get (channel, "label", &label, NULL);
  if (g_strcmp0 (label, PT_DATA_CHANNEL_LABEL) != 0 || pt_link_is_closed (link)) {
    GST_DEBUG ("link %s: ignoring data channel %s", link->peer_id, label);
    return;
  }
  GST_INFO ("link %s: data channel %s", link->peer_id, label);
  if (link->callbacks.data_channel)
    link->callbacks.data_channel (link, channel, link->user_data);
}

/* sender: the tree's data channel, before the offer (negotiated by DCEP, so
 * the child learns its reliability with it) */
static GstWebRTCDataChannel *
make_data_channel (PtLink * link, GError ** error)
{
  GstWebRTCDataChannel *channel = NULL;
  g_autoptr (GstStructure) init = gst_structure_new ("application/data-channel",
      "ordered", G_TYPE_BOOLEAN, link->data_ordered, NULL);

  if (link->data_max_retransmits >= 0)
    gst_structure_set (init, "max-retransmits", G_TYPE_INT, link->data_max_retransmits,
        NULL);
  g_signal_emit_by_name (link->webrtcbin, "create-data-channel", PT_DATA_CHANNEL_LABEL, init,
      &channel);
  if (channel == NULL)
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
        "webrtcbin refused to make a data channel for %s", link->peer_id);
  return channel;
}

static void
on_pad_added (GstElement * webrtcbin, GstPad * pad, gpointer user_data)
{
  PtLink *link = user_data;
  PtTap *tap;

  (void) webrtcbin;

  if (GST_PAD_DIRECTION (pad) != GST_PAD_SRC || pt_link_is_closed (link))
    return;
  GST_DEBUG ("link %s: new src pad %s", link->peer_id, GST_PAD_NAME (pad));
  tap = link->role == PT_LINK_ROLE_RECEIVER ? pair_tap (link, pad) : NULL;
  if (link->callbacks.pad_added)
    link->callbacks.pad_added (link, pad, link->user_data);
  /* linked by the owner: packets flow through the tap from now on */
  if (tap)
    g_atomic_int_set (&tap->ready, 1);
}

/* ---------------------------------------------------------------------- */
/* repair: the relay tap before the jitterbuffer (receiver) */

/* webrtcbin's src pads are ghost pads of ghost pads; the innermost target
 * (rtpptdemux's src pad) holds the stream's sticky events before the first
 * buffer. (transfer full) (nullable) */
static GstPad *
innermost_pad (GstPad * pad)
{
  GstPad *p = gst_object_ref (pad);

  while (p && GST_IS_GHOST_PAD (p)) {
    GstPad *target = gst_ghost_pad_get_target (GST_GHOST_PAD (p));

    gst_object_unref (p);
    p = target;
  }
  return p;
}

/* upstream events from the relay tee (any thread). A keyframe request
 * (GstForceKeyUnit, from a child's PLI/FIR or the owner) goes to the
 * stream's src pad, where it travels up to rtpsession as today and becomes
 * a PLI/FIR to the parent. Everything else stays here: a child's NACK
 * (GstRTPRetransmissionRequest) is answered by the child link's own
 * rtprtxsend and never reaches this point; should one come, the parent
 * must not see it. */
static gboolean
tap_proxy_event (GstPad * pad, GstObject * parent, GstEvent * event)
{
  GstPad *src = NULL;

  (void) parent;
  if (GST_EVENT_TYPE (event) == GST_EVENT_CUSTOM_UPSTREAM &&
      gst_event_has_name (event, "GstForceKeyUnit")) {
    GST_OBJECT_LOCK (pad);
    if (pad->element_private)
      src = gst_object_ref (pad->element_private);
    GST_OBJECT_UNLOCK (pad);
  }
  if (src) {
    gboolean ret = gst_pad_send_event (src, event);

    gst_object_unref (src);
    return ret;
  }
  gst_event_unref (event);
  return TRUE;
}

static gboolean
tap_proxy_query (GstPad * pad, GstObject * parent, GstQuery * query)
{
  (void) parent;
  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_CAPS:{
      GstCaps *filter, *caps = gst_pad_get_current_caps (pad);

      gst_query_parse_caps (query, &filter);
      if (caps == NULL)
        caps = gst_caps_new_empty_simple ("application/x-rtp");
      if (filter) {
        GstCaps *tmp = gst_caps_intersect_full (filter, caps, GST_CAPS_INTERSECT_FIRST);

        gst_caps_unref (caps);
        caps = tmp;
      }
      gst_query_set_caps_result (query, caps);
      gst_caps_unref (caps);
      return TRUE;
    }
    case GST_QUERY_ACCEPT_CAPS:
      gst_query_set_accept_caps_result (query, TRUE);
      return TRUE;
    case GST_QUERY_LATENCY:
      /* relaying adds no latency */
      gst_query_set_latency (query, TRUE, 0, GST_CLOCK_TIME_NONE);
      return TRUE;
    default:
      return FALSE;
  }
}

static gboolean
seen_bit (const guint64 * seen, guint i)
{
  return (seen[i / 64] >> (i % 64)) & 1;
}

/* the window moves up by @n */
static void
seen_shift (guint64 * seen, guint n)
{
  if (n >= PT_TAP_WINDOW) {
    seen[0] = seen[1] = 0;
  } else if (n >= 64) {
    seen[1] = seen[0] << (n - 64);
    seen[0] = 0;
  } else if (n > 0) {
    seen[1] = (seen[1] << n) | (seen[0] >> (64 - n));
    seen[0] <<= n;
  }
}

/* Whether @buf is a packet the tap has not forwarded yet (and marks it). */
static gboolean
tap_is_new (PtTap * tap, GstBuffer * buf)
{
  guint8 hdr[4];
  guint16 seq;
  gint16 diff;
  guint age;

  if (gst_buffer_extract (buf, 0, hdr, 4) != 4)
    return FALSE;
  seq = (hdr[2] << 8) | hdr[3];
  if (!tap->have_top) {
    tap->have_top = TRUE;
    tap->top = seq;
    tap->seen[0] = 1;
    tap->seen[1] = 0;
    return TRUE;
  }
  diff = (gint16) (guint16) (seq - tap->top);
  if (diff > 0) {
    seen_shift (tap->seen, (guint) diff);
    tap->top = seq;
    tap->seen[0] |= 1;
    return TRUE;
  }
  age = (guint) - diff;
  if (age >= PT_TAP_WINDOW || seen_bit (tap->seen, age))
    return FALSE;
  tap->seen[age / 64] |= G_GUINT64_CONSTANT (1) << (age % 64);
  return TRUE;
}

/* the jitterbuffer's streaming thread (upstream of it: nicesrc's) */
static GstPadProbeReturn
on_jitterbuffer_input (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  PtTap *tap = data;

  (void) pad;
  if (!g_atomic_int_get (&tap->ready))
    return GST_PAD_PROBE_OK;
  if (info->type & GST_PAD_PROBE_TYPE_BUFFER) {
    GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);

    if (tap_is_new (tap, buf))
      gst_pad_push (tap->proxy, gst_buffer_ref (buf));
  } else if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
    GstBufferList *list = GST_PAD_PROBE_INFO_BUFFER_LIST (info);

    for (guint i = 0; i < gst_buffer_list_length (list); i++) {
      GstBuffer *buf = gst_buffer_list_get (list, i);

      if (tap_is_new (tap, buf))
        gst_pad_push (tap->proxy, gst_buffer_ref (buf));
    }
  }
  return GST_PAD_PROBE_OK;
}

/* After the webrtcbin has stopped (no probe runs any more). */
static void
pt_tap_free (PtTap * tap)
{
  if (tap->probe_id)
    gst_pad_remove_probe (tap->sink, tap->probe_id);
  if (GST_PAD_PEER (tap->proxy)) {
    g_autoptr (GstPad) peer = gst_pad_get_peer (tap->proxy);

    if (peer)
      gst_pad_unlink (tap->proxy, peer);
  }
  gst_pad_set_active (tap->proxy, FALSE);
  GST_OBJECT_LOCK (tap->proxy);
  gst_clear_object ((GstPad **) & tap->proxy->element_private);
  GST_OBJECT_UNLOCK (tap->proxy);
  gst_object_unref (tap->proxy);
  gst_clear_object (&tap->src);
  gst_object_unref (tap->sink);
  gst_object_unref (tap->jitterbuffer);
  g_free (tap);
}

/* rtpbin::new-jitterbuffer, after webrtcbin's own handler (a streaming
 * thread). webrtcbin sets do-retransmission on every jitterbuffer of the
 * bundle from the last transceiver's do-nack; set it from the link's
 * setting. Every jitterbuffer gets a tap; the one whose SSRC a src pad
 * carries (the media SSRC, never the RTX one) forwards, once that pad
 * exists (on_pad_added). */
static void
on_new_jitterbuffer (GstElement * rtpbin, GstElement * jitterbuffer, guint session,
    guint ssrc, gpointer user_data)
{
  PtLink *link = user_data;
  PtTap *tap;
  g_autofree gchar *name = g_strdup_printf ("relay_%u_%u", session, ssrc);

  (void) rtpbin;
  g_object_set (jitterbuffer, "do-retransmission", link->repair, NULL);
  /* rtx-next-seqnum stays on: asking for the packet expected next as soon
   * as it is late by the jitterbuffer's estimate repairs a stream of one
   * packet per frame 33 ms sooner (98-100 % at depth 4 against 95-97 % with
   * it off, tests/gst/test-gst-repair.c), at the price of requests for
   * packets not sent yet (counted as misses by the sender's rtprtxsend) */
  /* the first packet would otherwise wait for the whole latency (the
   * deadline of an unknown stream start) before the src pad appears */
  if (g_object_class_find_property (G_OBJECT_GET_CLASS (jitterbuffer),
          "faststart-min-packets"))
    g_object_set (jitterbuffer, "faststart-min-packets", 1u, NULL);

  tap = g_new0 (PtTap, 1);
  tap->jitterbuffer = gst_object_ref (jitterbuffer);
  tap->sink = gst_element_get_static_pad (jitterbuffer, "sink");
  tap->ssrc = ssrc;
  tap->proxy = gst_object_ref_sink (gst_pad_new (name, GST_PAD_SRC));
  gst_pad_set_event_function (tap->proxy, tap_proxy_event);
  gst_pad_set_query_function (tap->proxy, tap_proxy_query);
  gst_pad_set_active (tap->proxy, TRUE);

  g_mutex_lock (&link->lock);
  if (link->closed || tap->sink == NULL) {
    g_mutex_unlock (&link->lock);
    if (tap->sink == NULL)
      tap->sink = gst_object_ref (tap->proxy);  /* for pt_tap_free */
    pt_tap_free (tap);
    return;
  }
  tap->probe_id = gst_pad_add_probe (tap->sink,
      GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST, on_jitterbuffer_input, tap,
      NULL);
  g_ptr_array_add (link->taps, tap);
  g_mutex_unlock (&link->lock);
  GST_DEBUG ("link %s: new jitterbuffer for ssrc %08x (do-retransmission %d)",
      link->peer_id, ssrc, link->repair);
}

static gboolean
copy_sticky_event (GstPad * pad, GstEvent ** event, gpointer user_data)
{
  GstPad *proxy = user_data;

  (void) pad;
  switch (GST_EVENT_TYPE (*event)) {
    case GST_EVENT_STREAM_START:
    case GST_EVENT_CAPS:
    case GST_EVENT_SEGMENT:
      gst_pad_store_sticky_event (proxy, *event);
      break;
    default:
      break;
  }
  return TRUE;
}

/* A src pad of the webrtcbin appeared (streaming thread): pair it with the
 * tap of the jitterbuffer of its SSRC. The tap's pad takes the stream's
 * sticky events (the jitterbuffer's input only has poor caps). Returns the
 * tap, to be made ready once the owner has linked it. */
static PtTap *
pair_tap (PtLink * link, GstPad * pad)
{
  g_autoptr (GstPad) inner = innermost_pad (pad);
  g_autoptr (GstCaps) caps = inner ? gst_pad_get_current_caps (inner) : NULL;
  guint ssrc;
  PtTap *tap = NULL;

  if (caps == NULL || !gst_structure_get_uint (gst_caps_get_structure (caps, 0), "ssrc",
          &ssrc)) {
    GST_WARNING ("link %s: src pad %s has no SSRC: not relayed", link->peer_id,
        GST_PAD_NAME (pad));
    return NULL;
  }
  g_mutex_lock (&link->lock);
  for (guint i = link->taps->len; i > 0 && tap == NULL; i--) {
    PtTap *t = g_ptr_array_index (link->taps, i - 1);

    if (t->ssrc == ssrc && t->src == NULL)
      tap = t;
  }
  if (tap)
    tap->src = gst_object_ref (pad);
  g_mutex_unlock (&link->lock);
  if (tap == NULL) {
    GST_WARNING ("link %s: no jitterbuffer for ssrc %08x: not relayed", link->peer_id, ssrc);
    return NULL;
  }

  gst_pad_sticky_events_foreach (inner, copy_sticky_event, tap->proxy);
  if (!gst_pad_has_current_caps (tap->proxy))
    gst_pad_store_sticky_event (tap->proxy, gst_event_new_caps (caps));
  g_mutex_lock (&link->lock);
  if (link->remote_fec) {
    /* the relayed stream carries the parent's ULPFEC packets: the child
     * links must negotiate RED and ULPFEC to pass them on */
    g_autoptr (GstCaps) cur = gst_pad_get_current_caps (tap->proxy);
    GstCaps *marked = gst_caps_copy (cur);

    gst_caps_set_simple (marked, PT_LINK_CAPS_FEC, G_TYPE_BOOLEAN, TRUE, NULL);
    gst_pad_store_sticky_event (tap->proxy, gst_event_new_caps (marked));
    gst_caps_unref (marked);
  }
  g_mutex_unlock (&link->lock);
  {
    g_autoptr (GstEvent) ss = gst_pad_get_sticky_event (tap->proxy, GST_EVENT_STREAM_START, 0);
    g_autoptr (GstEvent) seg = gst_pad_get_sticky_event (tap->proxy, GST_EVENT_SEGMENT, 0);

    if (ss == NULL) {
      g_autofree gchar *id = g_strdup_printf ("peertree-relay-%08x", ssrc);

      gst_pad_store_sticky_event (tap->proxy, gst_event_new_stream_start (id));
    }
    if (seg == NULL) {
      GstSegment segment;

      gst_segment_init (&segment, GST_FORMAT_TIME);
      gst_pad_store_sticky_event (tap->proxy, gst_event_new_segment (&segment));
    }
  }
  GST_OBJECT_LOCK (tap->proxy);
  tap->proxy->element_private = gst_object_ref (pad);
  GST_OBJECT_UNLOCK (tap->proxy);
  GST_DEBUG ("link %s: %s relayed from the jitterbuffer input of ssrc %08x", link->peer_id,
      GST_PAD_NAME (pad), ssrc);
  return tap;
}

GstPad *
pt_link_get_relay_pad (PtLink * link, GstPad * pad)
{
  GstPad *ret = NULL;

  g_return_val_if_fail (link != NULL, NULL);

  g_mutex_lock (&link->lock);
  for (guint i = 0; i < link->taps->len && ret == NULL; i++) {
    PtTap *t = g_ptr_array_index (link->taps, i);

    if (t->src == pad)
      ret = gst_object_ref (t->proxy);
  }
  g_mutex_unlock (&link->lock);
  return ret;
}

/* webrtcbin::on-new-transceiver (receiver): only the local do-nack counts
 * in 1.22, so the answer's NACK and RTX follow the link's setting. */
static void
on_new_transceiver (GstElement * webrtcbin, GstWebRTCRTPTransceiver * trans,
    gpointer user_data)
{
  PtLink *link = user_data;

  (void) webrtcbin;
  g_object_set (trans, "do-nack", link->repair, NULL);
  /* answer RED and ULPFEC when the parent offers them (nothing otherwise):
   * webrtcbin then unwraps RED before the jitterbuffer and rebuilds a lost
   * packet from the FEC after it */
  g_object_set (trans, "fec-type", GST_WEBRTC_FEC_TYPE_ULP_RED, NULL);
}

/* rtprtxsend (1.22) appends every packet it sends to its cache and finds
 * the one a NACK asks for by binary search over that list: a packet out of
 * order (a relay forwarding a repaired packet late) hides its neighbours
 * from the search for as long as it stays cached (1 s), and the child's
 * NACKs for them go unanswered until its jitterbuffer gives up. A packet
 * older than the newest one of its SSRC is therefore passed around the
 * cache, straight to rtprtxsend's src pad: the child gets it at once. Such
 * late packets go into a small cache of their own (PT_LATE_SLOTS, at most
 * PT_LATE_AGE old), and a NACK for one of them is answered from there by
 * sending the packet again as it was (srtpenc's allow-repeat-tx: the same
 * payload under the same index), before rtprtxsend sees the request. A
 * late packet lost again on the next hop would otherwise be lost for good
 * below it: one keyframe wait (~300 ms) each time, a few times a minute at
 * depth 4 and 2 % loss per hop. The late path runs in the sending
 * streaming thread (as rtprtxsend's chain function would), the answers in
 * the RTCP thread that sends the request upstream. */
#define PT_LATE_SLOTS 128
#define PT_LATE_AGE (2 * G_USEC_PER_SEC)

typedef struct {
  guint32 ssrc;
  guint16 seq;
  gint64 when;                  /* monotonic, us */
  GstBuffer *buf;
} PtLatePacket;

typedef struct _PtCacheGuard {
  GMutex lock;
  GHashTable *top;              /* SSRC -> the newest sequence number + 1 */
  PtLatePacket late[PT_LATE_SLOTS];
  guint next;                   /* the slot the next late packet takes */
  gint resent;                  /* atomic: NACKs answered from the late packets */
} PtCacheGuard;

static void
cache_guard_clear (PtCacheGuard * g)
{
  for (guint i = 0; i < PT_LATE_SLOTS; i++)
    gst_clear_buffer (&g->late[i].buf);
  g_hash_table_unref (g->top);
  g_mutex_clear (&g->lock);
}

static void
cache_guard_unref (gpointer g)
{
  g_atomic_rc_box_release_full (g, (GDestroyNotify) cache_guard_clear);
}

static gboolean
rtp_ssrc_seq (GstBuffer * buf, guint32 * ssrc, guint16 * seq)
{
  guint8 hdr[12];

  if (gst_buffer_extract (buf, 0, hdr, sizeof hdr) != sizeof hdr || (hdr[0] >> 6) != 2)
    return FALSE;
  *seq = (hdr[2] << 8) | hdr[3];
  *ssrc = ((guint32) hdr[8] << 24) | ((guint32) hdr[9] << 16) | ((guint32) hdr[10] << 8) |
      hdr[11];
  return TRUE;
}

static GstPadProbeReturn
keep_rtx_cache_in_order (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  PtCacheGuard *g = data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  guint32 ssrc;
  guint16 seq;
  gpointer top;
  PtLatePacket *slot;

  if (!rtp_ssrc_seq (buf, &ssrc, &seq))
    return GST_PAD_PROBE_OK;
  g_mutex_lock (&g->lock);
  top = g_hash_table_lookup (g->top, GUINT_TO_POINTER (ssrc));
  if (top == NULL || (gint16) (guint16) (seq - (GPOINTER_TO_UINT (top) - 1)) > 0) {
    g_hash_table_insert (g->top, GUINT_TO_POINTER (ssrc), GUINT_TO_POINTER (seq + 1u));
    g_mutex_unlock (&g->lock);
    return GST_PAD_PROBE_OK;
  }
  slot = &g->late[g->next];
  g->next = (g->next + 1) % PT_LATE_SLOTS;
  gst_clear_buffer (&slot->buf);
  slot->ssrc = ssrc;
  slot->seq = seq;
  slot->when = g_get_monotonic_time ();
  slot->buf = gst_buffer_ref (buf);
  g_mutex_unlock (&g->lock);
  {
    g_autoptr (GstPad) src = gst_element_get_static_pad (GST_PAD_PARENT (pad), "src");

    if (src) {
      GstFlowReturn fr = gst_pad_push (src, gst_buffer_ref (buf));

      GST_LOG ("late packet #%u of %08x passed around the RTX cache: %s", seq, ssrc,
          gst_flow_get_name (fr));
    }
  }
  return GST_PAD_PROBE_DROP;
}

/* rtprtxsend's src pad, upstream events: a NACK for a late packet */
static GstPadProbeReturn
answer_late_nack (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  PtCacheGuard *g = data;
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT (info);
  const GstStructure *s;
  guint ssrc, seqnum;
  GstBuffer *buf = NULL;
  gint64 now;

  if (GST_EVENT_TYPE (event) != GST_EVENT_CUSTOM_UPSTREAM)
    return GST_PAD_PROBE_OK;
  s = gst_event_get_structure (event);
  if (!gst_structure_has_name (s, "GstRTPRetransmissionRequest") ||
      !gst_structure_get_uint (s, "ssrc", &ssrc) ||
      !gst_structure_get_uint (s, "seqnum", &seqnum))
    return GST_PAD_PROBE_OK;
  now = g_get_monotonic_time ();
  g_mutex_lock (&g->lock);
  for (guint i = 0; i < PT_LATE_SLOTS; i++) {
    PtLatePacket *p = &g->late[i];

    if (p->buf && p->ssrc == ssrc && p->seq == (guint16) seqnum &&
        now - p->when <= PT_LATE_AGE) {
      buf = gst_buffer_ref (p->buf);
      g_atomic_int_inc (&g->resent);
      break;
    }
  }
  g_mutex_unlock (&g->lock);
  if (buf == NULL)
    return GST_PAD_PROBE_OK;    /* rtprtxsend's, if anyone's */
  GST_DEBUG ("NACK for late packet #%u of %08x: sent again", seqnum, ssrc);
  gst_pad_push (pad, buf);
  return GST_PAD_PROBE_HANDLED;
}

static PtCacheGuard *
guard_rtx_cache (GstElement * rtxsend)
{
  g_autoptr (GstPad) sink = gst_element_get_static_pad (rtxsend, "sink");
  g_autoptr (GstPad) src = gst_element_get_static_pad (rtxsend, "src");
  PtCacheGuard *g = g_atomic_rc_box_new0 (PtCacheGuard);

  g_mutex_init (&g->lock);
  g->top = g_hash_table_new (NULL, NULL);
  gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, answer_late_nack,
      g_atomic_rc_box_acquire (g), cache_guard_unref);
  gst_pad_add_probe (sink, GST_PAD_PROBE_TYPE_BUFFER, keep_rtx_cache_in_order,
      g_atomic_rc_box_acquire (g), cache_guard_unref);
  return g;
}

/* nicesrc's streaming thread: every packet the link receives (media,
 * RTCP, DTLS; libnice keeps STUN to itself) */
static GstPadProbeReturn
count_rx (GstPad * pad, GstPadProbeInfo * info, gpointer data)
{
  PtLink *link = data;

  (void) pad;
  (void) info;
  g_atomic_int_inc (&link->rx_packets);
  return GST_PAD_PROBE_OK;
}

/* webrtcbin::deep-element-added: keep the RTX elements for the stats, count
 * what the link receives */
static void
on_link_deep_element_added (GstBin * bin, GstBin * sub_bin, GstElement * element,
    gpointer user_data)
{
  PtLink *link = user_data;
  GstElementFactory *factory = gst_element_get_factory (element);
  const gchar *name = factory ? GST_OBJECT_NAME (factory) : "";

  (void) bin;
  (void) sub_bin;
  g_mutex_lock (&link->lock);
  if (g_strcmp0 (name, "rtprtxsend") == 0 && link->rtxsend == NULL) {
    link->rtxsend = gst_object_ref (element);
    link->guard = guard_rtx_cache (element);
  } else if (g_strcmp0 (name, "srtpenc") == 0) {
    /* a late packet answered again from guard_rtx_cache() */
    g_object_set (element, "allow-repeat-tx", TRUE, NULL);
  }
  else if (g_strcmp0 (name, "rtprtxreceive") == 0 && link->rtxreceive == NULL)
    link->rtxreceive = gst_object_ref (element);
  else if (g_strcmp0 (name, "rtpulpfecdec") == 0 && link->fecdec == NULL)
    link->fecdec = gst_object_ref (element);
  else if (g_strcmp0 (name, "rtpulpfecenc") == 0 && link->fecenc == NULL)
    link->fecenc = gst_object_ref (element);
  g_mutex_unlock (&link->lock);
  if (g_strcmp0 (name, "nicesrc") == 0) {
    GstPad *src = gst_element_get_static_pad (element, "src");

    /* the link (not a ref: it outlives its webrtcbin's streaming) */
    if (src) {
      gst_pad_add_probe (src, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
          count_rx, link, NULL);
      gst_object_unref (src);
    }
  }
}

/* ---------------------------------------------------------------------- */
/* repair: the latency follows the link (receiver, the owner's context) */

static guint64
stats_uint64 (const GstStructure * s, const gchar * field)
{
  guint64 v = 0;

  if (s && !gst_structure_get_uint64 (s, field, &v)) {
    guint u = 0;

    if (gst_structure_get_uint (s, field, &u))
      v = u;
  }
  return v;
}

/* The link's jitterbuffers (refs, taken under the lock), those paired
 * with a src pad of the webrtcbin only if @paired. (transfer full) */
static GPtrArray *
link_jitterbuffers (PtLink * link, gboolean paired)
{
  GPtrArray *jbs = g_ptr_array_new_with_free_func (gst_object_unref);

  g_mutex_lock (&link->lock);
  for (guint i = 0; link->taps && i < link->taps->len; i++) {
    PtTap *t = g_ptr_array_index (link->taps, i);

    if (t->src || !paired)
      g_ptr_array_add (jbs, gst_object_ref (t->jitterbuffer));
  }
  g_mutex_unlock (&link->lock);
  return jbs;
}

/* The stats of the jitterbuffers that feed the relay (summed; rtx-rtt the
 * largest). (transfer full) */
static GstStructure *
jitterbuffer_stats (PtLink * link)
{
  g_autoptr (GPtrArray) jbs = link_jitterbuffers (link, TRUE);
  guint64 lost = 0, pushed = 0, rtx = 0, rtx_ok = 0, rtt = 0;

  for (guint i = 0; i < jbs->len; i++) {
    g_autoptr (GstStructure) s = NULL;

    g_object_get (g_ptr_array_index (jbs, i), "stats", &s, NULL);
    lost += stats_uint64 (s, "num-lost");
    pushed += stats_uint64 (s, "num-pushed");
    rtx += stats_uint64 (s, "rtx-count");
    rtx_ok += stats_uint64 (s, "rtx-success-count");
    if (stats_uint64 (s, "rtx-success-count") > 0)
      rtt = MAX (rtt, stats_uint64 (s, "rtx-rtt"));
  }
  return gst_structure_new ("jitterbuffer", "num-pushed", G_TYPE_UINT64, pushed,
      "num-lost", G_TYPE_UINT64, lost, "rtx-count", G_TYPE_UINT64, rtx,
      "rtx-success-count", G_TYPE_UINT64, rtx_ok, "rtx-rtt", G_TYPE_UINT64, rtt, NULL);
}

/* clamp (2 × RTT + margin, min, bound); MIN (start, bound) before any
 * repair measured the round trip (a receiver has no RTCP RTT in 1.22: no
 * XR) */
static guint
adaptive_latency_for (guint64 rtt_ns, gboolean measured, guint bound_ms)
{
  guint64 ms;

  if (!measured)
    return MIN (bound_ms, PT_LINK_ADAPTIVE_LATENCY_START_MS);
  ms = 2 * (rtt_ns / GST_MSECOND) + PT_LINK_ADAPTIVE_LATENCY_MARGIN_MS;
  return (guint) CLAMP (ms, MIN (PT_LINK_ADAPTIVE_LATENCY_MIN_MS, bound_ms), bound_ms);
}

/* The wait before a NACK is sent again: the round trip a repair took
 * (rtx-rtt) and PT_LINK_RTX_RETRY_MARGIN_MS, per jitterbuffer, once one of
 * its repairs succeeded. rtpjitterbuffer's own choice (1.22) is about twice
 * that, which left two tries within the latency at 40 ms RTT: in the lab
 * chain at 5 % loss per hop depth 4 decoded 74-85 % of the frames, 98-100 %
 * with this. Each change of more than 5 ms is applied. */
static void
tune_rtx_retry (PtLink * link)
{
  g_autoptr (GPtrArray) jbs = link_jitterbuffers (link, FALSE);

  for (guint i = 0; i < jbs->len; i++) {
    GObject *jb = g_ptr_array_index (jbs, i);
    g_autoptr (GstStructure) s = NULL;
    gint cur = -1, want;

    g_object_get (jb, "stats", &s, "rtx-retry-timeout", &cur, NULL);
    if (stats_uint64 (s, "rtx-success-count") == 0)
      continue;
    want = (gint) CLAMP (stats_uint64 (s, "rtx-rtt") / GST_MSECOND +
        PT_LINK_RTX_RETRY_MARGIN_MS, PT_LINK_RTX_RETRY_MIN_MS, PT_LINK_RTX_RETRY_MAX_MS);
    if (cur < 0 || ABS (want - cur) > 5) {
      GST_DEBUG ("link %s: NACK retry after %d ms (rtx-rtt %" G_GUINT64_FORMAT " us)",
          link->peer_id, want, stats_uint64 (s, "rtx-rtt") / 1000);
      g_object_set (jb, "rtx-retry-timeout", want, NULL);
    }
  }
}

static gboolean
on_latency_timer (gpointer data)
{
  PtLink *link = data;
  g_autoptr (GstStructure) s = NULL;
  guint cur, want;

  if (pt_link_is_closed (link))
    return G_SOURCE_REMOVE;
  if (link->repair)
    tune_rtx_retry (link);
  if (!link->adaptive_latency)
    return G_SOURCE_CONTINUE;
  s = jitterbuffer_stats (link);
  want = adaptive_latency_for (stats_uint64 (s, "rtx-rtt"),
      stats_uint64 (s, "rtx-success-count") > 0, link->max_latency_ms);
  g_mutex_lock (&link->lock);
  cur = link->latency_ms;
  /* only moves of more than 20 %: every change makes the pipeline
   * recompute its latency */
  if (want * 5 > cur * 6 || want * 5 < cur * 4)
    link->latency_ms = want;
  else
    want = cur;
  g_mutex_unlock (&link->lock);
  if (want != cur) {
    GST_INFO ("link %s: latency %u ms (was %u; repair rtt %" G_GUINT64_FORMAT " us)",
        link->peer_id, want, cur, stats_uint64 (s, "rtx-rtt") / 1000);
    g_object_set (link->webrtcbin, "latency", want, NULL);
  }
  return G_SOURCE_CONTINUE;
}

GstStructure *
pt_link_get_repair_stats (PtLink * link, const GstStructure * webrtc_stats)
{
  GstStructure *ret = gst_structure_new ("repair", "enabled", G_TYPE_BOOLEAN, link->repair,
      NULL);
  g_autoptr (GstElement) rtxsend = NULL;
  g_autoptr (GstElement) rtxreceive = NULL;
  PtCacheGuard *guard = NULL;
  g_autoptr (GstElement) fecdec = NULL;
  g_autoptr (GstElement) fecenc = NULL;
  guint latency;

  g_mutex_lock (&link->lock);
  if (link->rtxsend)
    rtxsend = gst_object_ref (link->rtxsend);
  if (link->guard)
    guard = g_atomic_rc_box_acquire (link->guard);
  if (link->fecdec)
    fecdec = gst_object_ref (link->fecdec);
  if (link->fecenc)
    fecenc = gst_object_ref (link->fecenc);
  if (link->rtxreceive)
    rtxreceive = gst_object_ref (link->rtxreceive);
  latency = link->latency_ms;
  g_mutex_unlock (&link->lock);

  if (link->role == PT_LINK_ROLE_SENDER) {
    guint requests = 0, packets = 0, nacks = 0, plis = 0;

    if (rtxsend)
      g_object_get (rtxsend, "num-rtx-requests", &requests, "num-rtx-packets", &packets,
          NULL);
    for (gint i = 0; webrtc_stats && i < gst_structure_n_fields (webrtc_stats); i++) {
      const GValue *v = gst_structure_get_value (webrtc_stats,
          gst_structure_nth_field_name (webrtc_stats, i));
      const GstStructure *st;
      GstWebRTCStatsType type;
      guint n;

      if (!GST_VALUE_HOLDS_STRUCTURE (v))
        continue;
      st = gst_value_get_structure (v);
      if (!gst_structure_get_enum (st, "type", GST_TYPE_WEBRTC_STATS_TYPE, (gint *) & type)
          || type != GST_WEBRTC_STATS_OUTBOUND_RTP)
        continue;
      if (gst_structure_get_uint (st, "nack-count", &n))
        nacks += n;
      if (gst_structure_get_uint (st, "pli-count", &n))
        plis += n;
    }
    gst_structure_set (ret, "num-rtx-requests", G_TYPE_UINT, requests,
        "num-rtx-packets", G_TYPE_UINT, packets,
        "late-packets-resent", G_TYPE_UINT, guard ? (guint) g_atomic_int_get (&guard->resent) : 0u,
        "nack-count", G_TYPE_UINT, nacks,
        "pli-count", G_TYPE_UINT, plis, NULL);
    if (fecenc) {
      guint protected = 0;

      /* media packets the ULPFEC packets made here protect: 0 at a relay,
       * which passes its parent's on */
      g_object_get (fecenc, "protected", &protected, NULL);
      gst_structure_set (ret, "fec-protected", G_TYPE_UINT, protected, NULL);
    }
  } else {
    g_autoptr (GstStructure) jb = jitterbuffer_stats (link);
    guint requests = 0, packets = 0, assoc = 0;

    if (rtxreceive)
      g_object_get (rtxreceive, "num-rtx-requests", &requests, "num-rtx-packets", &packets,
          "num-rtx-assoc-packets", &assoc, NULL);
    gst_structure_set (ret, "latency", G_TYPE_UINT, latency,
        "num-pushed", G_TYPE_UINT64, stats_uint64 (jb, "num-pushed"),
        "num-lost", G_TYPE_UINT64, stats_uint64 (jb, "num-lost"),
        "rtx-count", G_TYPE_UINT64, stats_uint64 (jb, "rtx-count"),
        "rtx-success-count", G_TYPE_UINT64, stats_uint64 (jb, "rtx-success-count"),
        "rtx-rtt", G_TYPE_UINT64, stats_uint64 (jb, "rtx-rtt"),
        "num-rtx-requests", G_TYPE_UINT, requests, "num-rtx-packets", G_TYPE_UINT, packets,
        "num-rtx-assoc-packets", G_TYPE_UINT, assoc, NULL);
    if (fecdec) {
      guint recovered = 0, unrecovered = 0;

      g_object_get (fecdec, "recovered", &recovered, "unrecovered", &unrecovered, NULL);
      gst_structure_set (ret, "fec-recovered", G_TYPE_UINT, recovered,
          "fec-unrecovered", G_TYPE_UINT, unrecovered, NULL);
    }
  }
  if (guard)
    cache_guard_unref (guard);
  return ret;
}

/* ---------------------------------------------------------------------- */
/* lifecycle */

PtLink *
pt_link_new (PtLinkRole role, const gchar * peer_id, GstBin * bin,
    const PtLinkConfig * config, const PtLinkCallbacks * callbacks, gpointer user_data,
    GDestroyNotify user_data_free, GMainContext * context, GError ** error)
{
  PtLink *link;
  GstElement *webrtcbin;
  g_autofree gchar *name = NULL;

  g_return_val_if_fail (peer_id != NULL, NULL);
  g_return_val_if_fail (GST_IS_BIN (bin), NULL);
  g_return_val_if_fail (config != NULL, NULL);

  pt_link_init_debug ();

  name = g_strdup_printf ("%s-%s", role == PT_LINK_ROLE_SENDER ? "to" : "from", peer_id);
  /* element names may not contain '/' */
  g_strdelimit (name, "/", '_');
  webrtcbin = pt_webrtc_make_webrtcbin (name, config, error);
  if (webrtcbin == NULL)
    return NULL;

  if (!gst_bin_add (bin, webrtcbin)) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
        "Could not add webrtcbin %s (a link to this peer exists already?)", name);
    gst_object_unref (webrtcbin);
    return NULL;
  }

  link = g_new0 (PtLink, 1);
  link->ref_count = 1;
  g_mutex_init (&link->lock);
  link->role = role;
  link->peer_id = g_strdup (peer_id);
  link->bin = gst_object_ref (bin);
  link->webrtcbin = gst_object_ref (webrtcbin);
  if (callbacks)
    link->callbacks = *callbacks;
  link->user_data = user_data;
  link->user_data_free = user_data_free;
  link->context = context ? g_main_context_ref (context) :
      g_main_context_ref_thread_default ();
  link->state = link->ice_state = PT_LINK_STATE_NEW;
  link->stall_ms = config->repair ? PT_LINK_STALL_MS : PT_LINK_STALL_NO_REPAIR_MS;
  g_queue_init (&link->pending_candidates);
  link->branches = g_ptr_array_new ();
  link->taps = g_ptr_array_new ();
  link->repair = config->repair;
  link->fec_percentage = config->fec_percentage;
  link->adaptive_latency = config->adaptive_latency;
  link->max_latency_ms = config->latency_ms;
  link->latency_ms = pt_link_config_start_latency (config);
  if (config->turn_server && *config->turn_server)
    link->ice_gate = pt_ice_gate_new (link->context, add_remote_candidate, link);

  link->negotiation_id = g_signal_connect (webrtcbin, "on-negotiation-needed",
      G_CALLBACK (on_negotiation_needed), link);
  link->candidate_id = g_signal_connect (webrtcbin, "on-ice-candidate",
      G_CALLBACK (on_ice_candidate), link);
  link->ice_state_id = g_signal_connect (webrtcbin, "notify::ice-connection-state",
      G_CALLBACK (on_ice_connection_state), link);
  link->pad_added_id = g_signal_connect (webrtcbin, "pad-added",
      G_CALLBACK (on_pad_added), link);
  if (role == PT_LINK_ROLE_SENDER)
    link->conn_state_id = g_signal_connect (webrtcbin, "notify::connection-state",
        G_CALLBACK (on_connection_state), link);
  link->deep_added_id = g_signal_connect (webrtcbin, "deep-element-added",
      G_CALLBACK (on_link_deep_element_added), link);
  link->data = role == PT_LINK_ROLE_SENDER && config->data;
  link->data_ordered = config->data_ordered;
  link->data_max_retransmits = config->data_max_retransmits;
  if (role == PT_LINK_ROLE_RECEIVER)
    link->data_channel_id = g_signal_connect (webrtcbin, "on-data-channel",
        G_CALLBACK (on_data_channel), link);
  /* webrtcbin makes its rtpbin at once (a sender reads its RTP session's
   * receiver reports, a receiver takes its jitterbuffers) */
  link->rtpbin = gst_bin_get_by_name (GST_BIN (webrtcbin), "rtpbin");
  if (role == PT_LINK_ROLE_RECEIVER) {
    link->new_transceiver_id = g_signal_connect (webrtcbin, "on-new-transceiver",
        G_CALLBACK (on_new_transceiver), link);
    /* connected after webrtcbin's own handler, so ours has the last word */
    if (link->rtpbin)
      link->new_jitterbuffer_id = g_signal_connect (link->rtpbin, "new-jitterbuffer",
          G_CALLBACK (on_new_jitterbuffer), link);
    else
      GST_WARNING ("link %s: webrtcbin has no rtpbin: nothing will be relayed", peer_id);
    if (link->adaptive_latency || link->repair) {
      link->latency_timer = g_timeout_source_new (1000);
      g_source_set_callback (link->latency_timer, on_latency_timer, pt_link_ref (link),
          (GDestroyNotify) pt_link_unref);
      g_source_set_static_name (link->latency_timer, "[peertree] link latency");
      g_source_attach (link->latency_timer, link->context);
    }
  }

  link->liveness_timer = g_timeout_source_new (PT_LINK_LIVENESS_TICK_MS);
  g_source_set_callback (link->liveness_timer, on_liveness_tick, pt_link_ref (link),
      (GDestroyNotify) pt_link_unref);
  g_source_set_static_name (link->liveness_timer, "[peertree] link liveness");
  g_source_attach (link->liveness_timer, link->context);

  GST_INFO ("link %s: new %s", peer_id, role == PT_LINK_ROLE_SENDER ? "sender" : "receiver");
  return link;
}

PtLink *
pt_link_ref (PtLink * link)
{
  g_return_val_if_fail (link != NULL, NULL);
  g_atomic_int_inc (&link->ref_count);
  return link;
}

void
pt_link_unref (PtLink * link)
{
  g_return_if_fail (link != NULL);

  if (!g_atomic_int_dec_and_test (&link->ref_count))
    return;

  if (!link->closed) {
    /* Can't set webrtcbin to NULL here: the last ref may be dropped by one of
     * webrtcbin's own threads. Owners must call pt_link_close(). */
    g_critical ("PtLink %s freed without pt_link_close()", link->peer_id);
  }
  g_queue_clear_full (&link->pending_candidates, (GDestroyNotify) pt_candidate_free);
  g_ptr_array_unref (link->branches);
  g_ptr_array_unref (link->taps);
  gst_clear_object (&link->rtxsend);
  gst_clear_object (&link->rtxreceive);
  gst_clear_object (&link->fecdec);
  gst_clear_object (&link->fecenc);
  g_clear_pointer (&link->guard, cache_guard_unref);
  gst_clear_object (&link->rtpbin);
  gst_clear_object (&link->data_channel);
  gst_clear_object (&link->webrtcbin);
  gst_clear_object (&link->bin);
  g_main_context_unref (link->context);
  g_free (link->remote_ufrag);
  g_free (link->peer_id);
  g_mutex_clear (&link->lock);
  g_free (link);
}

/* called with lock */
static gboolean
link_branches_locked (PtLink * link, GError ** error)
{
  gboolean ok = TRUE;

  for (guint i = 0; i < link->branches->len && ok; i++) {
    PtRelayBranch *br = g_ptr_array_index (link->branches, i);

    if (!pt_relay_branch_is_linked (br))
      ok = pt_relay_branch_link (br, link->peer_id, error);
  }
  return ok;
}

gboolean
pt_link_start (PtLink * link)
{
  gboolean ok;
  g_autoptr (GError) error = NULL;

  g_return_val_if_fail (link != NULL, FALSE);

  ok = gst_element_sync_state_with_parent (link->webrtcbin);
  /* webrtcbin takes data channels once out of NULL; before the offer, which
   * the transceivers' negotiation-needed asks for from webrtcbin's own
   * thread (if the offer is made first, the channel's negotiation-needed
   * brings a second one) */
  if (ok && link->data && link->data_channel == NULL) {
    gboolean deferred;
    GstWebRTCDataChannel *channel = make_data_channel (link, &error);

    g_mutex_lock (&link->lock);
    link->data_channel = channel;
    deferred = link->negotiation_deferred;
    link->negotiation_deferred = FALSE;
    g_mutex_unlock (&link->lock);
    if (channel == NULL) {
      GST_WARNING ("link %s: %s", link->peer_id, error->message);
      g_clear_error (&error);
      ok = FALSE;
    } else if (deferred) {
      on_negotiation_needed (link->webrtcbin, link);
    }
  }

  g_mutex_lock (&link->lock);
  if (!link->closed && !link->started) {
    link->started = TRUE;
    ok = link_branches_locked (link, &error);
  }
  g_mutex_unlock (&link->lock);

  if (error)
    GST_WARNING ("link %s: %s", link->peer_id, error->message);
  return ok;
}

GstPad *
pt_link_add_send_stream (PtLink * link, GstCaps * rtp_caps, GError ** error)
{
  g_autofree gchar *pad_name = NULL;
  g_autoptr (GstWebRTCRTPTransceiver) trans = NULL;
  GstPad *pad;

  g_return_val_if_fail (link != NULL, NULL);
  g_return_val_if_fail (link->role == PT_LINK_ROLE_SENDER, NULL);
  g_return_val_if_fail (GST_IS_CAPS (rtp_caps), NULL);

  g_mutex_lock (&link->lock);
  pad_name = g_strdup_printf ("sink_%u", link->next_sink++);
  g_mutex_unlock (&link->lock);

  /* Request by explicit name: 1.22's reuse of a pre-added transceiver by an
   * unnamed request is buggy. Without caps, webrtcbin creates a SENDRECV
   * transceiver, which is made SENDONLY with codec preferences below so that
   * negotiation-needed fires before any media flows. */
  pad = gst_element_request_pad_simple (link->webrtcbin, pad_name);
  if (pad == NULL) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_PAD,
        "webrtcbin refused sink pad %s", pad_name);
    return NULL;
  }
  g_object_get (pad, "transceiver", &trans, NULL);
  if (trans == NULL) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_PAD,
        "webrtcbin pad %s has no transceiver", pad_name);
    gst_element_release_request_pad (link->webrtcbin, pad);
    gst_object_unref (pad);
    return NULL;
  }
  {
    /* a payloader's private fields do not belong in the SDP */
    g_autoptr (GstCaps) prefs = gst_caps_copy (rtp_caps);
    gboolean relayed_fec = FALSE;

    for (guint i = 0; i < gst_caps_get_size (prefs); i++) {
      GstStructure *st = gst_caps_get_structure (prefs, i);
      gboolean f = FALSE;

      if (gst_structure_get_boolean (st, PT_LINK_CAPS_FEC, &f) && f)
        relayed_fec = TRUE;
      gst_structure_remove_fields (st, "seqnum-offset", "timestamp-offset", "seqnum-base",
          "clock-base", PT_LINK_CAPS_FEC, NULL);
      /* relayed caps carry the parent link's feedback */
      if (!link->repair)
        gst_structure_remove_field (st, "rtcp-fb-nack");
    }
    /* do-nack: the offer carries a=rtcp-fb nack, an RTX payload (apt=) and
     * an ssrc-group FID, and webrtcbin puts rtprtxsend, the cache that
     * answers the child's NACKs, on the send path */
    g_object_set (trans, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY,
        "codec-preferences", prefs, "do-nack", link->repair, NULL);
    /* FEC (docs/repair.md): the source's links make ULPFEC packets and send
     * every packet in RED; a relay's links send in RED what they relay, the
     * parent's ULPFEC packets included, and make none themselves */
    if (link->fec_percentage > 0 || relayed_fec) {
      const gchar *media = gst_structure_get_string (gst_caps_get_structure (prefs, 0),
          "media");

      if (g_strcmp0 (media, "video") == 0)
        g_object_set (trans, "fec-type", GST_WEBRTC_FEC_TYPE_ULP_RED, "fec-percentage",
            relayed_fec ? 0u : link->fec_percentage, NULL);
    }
    GST_DEBUG ("link %s: %s with %" GST_PTR_FORMAT, link->peer_id, pad_name, prefs);
  }
  return pad;
}

gboolean
pt_link_add_relay_stream (PtLink * link, GstElement * tee, GError ** error)
{
  g_autoptr (GstCaps) caps = NULL;
  g_autoptr (GstPad) wpad = NULL;
  PtRelayBranch *br;
  gboolean ok = TRUE;

  g_return_val_if_fail (link != NULL, FALSE);
  g_return_val_if_fail (GST_IS_ELEMENT (tee), FALSE);

  caps = pt_relay_get_tee_caps (tee);
  if (caps == NULL || !gst_caps_is_fixed (caps)) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
        "Relay stream %s has no RTP caps yet", GST_ELEMENT_NAME (tee));
    return FALSE;
  }

  wpad = pt_link_add_send_stream (link, caps, error);
  if (wpad == NULL)
    return FALSE;

  br = pt_relay_branch_new (link->bin, tee, wpad, error);
  if (br == NULL)
    return FALSE;

  g_mutex_lock (&link->lock);
  g_ptr_array_add (link->branches, br);
  if (link->started && !link->closed)
    ok = pt_relay_branch_link (br, link->peer_id, error);
  g_mutex_unlock (&link->lock);
  return ok;
}


void
pt_link_close (PtLink * link)
{
  GPtrArray *branches, *taps;
  GstElement *webrtcbin;
  GSource *latency_timer, *liveness_timer, *restart_timer;

  g_return_if_fail (link != NULL);
  webrtcbin = link->webrtcbin;

  g_mutex_lock (&link->lock);
  if (link->closed) {
    g_mutex_unlock (&link->lock);
    return;
  }
  link->closed = TRUE;
  link->state = PT_LINK_STATE_CLOSED;
  branches = link->branches;
  link->branches = g_ptr_array_new ();
  latency_timer = g_steal_pointer (&link->latency_timer);
  liveness_timer = g_steal_pointer (&link->liveness_timer);
  restart_timer = g_steal_pointer (&link->restart_timer);
  g_mutex_unlock (&link->lock);

  if (latency_timer) {
    g_source_destroy (latency_timer);
    g_source_unref (latency_timer);
  }
  if (liveness_timer) {
    g_source_destroy (liveness_timer);
    g_source_unref (liveness_timer);
  }
  if (restart_timer) {
    g_source_destroy (restart_timer);
    g_source_unref (restart_timer);
  }

  GST_INFO ("link %s: closing", link->peer_id);

  /* 1. no handler may reach the owner any more */
  g_clear_signal_handler (&link->negotiation_id, webrtcbin);
  g_clear_signal_handler (&link->candidate_id, webrtcbin);
  g_clear_signal_handler (&link->ice_state_id, webrtcbin);
  g_clear_signal_handler (&link->conn_state_id, webrtcbin);
  g_clear_signal_handler (&link->pad_added_id, webrtcbin);
  g_clear_signal_handler (&link->deep_added_id, webrtcbin);
  g_clear_signal_handler (&link->new_transceiver_id, webrtcbin);
  g_clear_signal_handler (&link->data_channel_id, webrtcbin);
  if (link->rtpbin)
    g_clear_signal_handler (&link->new_jitterbuffer_id, link->rtpbin);

  g_clear_pointer (&link->ice_gate, pt_ice_gate_free);

  /* 2. detach relay branches from the shared tees (siblings keep flowing) */
  for (guint i = 0; i < branches->len; i++)
    pt_relay_branch_unlink (g_ptr_array_index (branches, i), link->peer_id);

  /* 3. stop webrtcbin first: that unblocks queue threads pushing into its
   *    (still unnegotiated) sink pads, then the queues. Each element's state
   *    is locked first: this runs on the owner's loop thread while the
   *    application may be changing the state of the bin, which would
   *    otherwise bring an element we just stopped back to PAUSED (its
   *    threads running again) before we remove and dispose of it. The bin
   *    checks the flag under the element's state lock, so once
   *    pt_element_stop_and_remove() has set it, no state change of the bin
   *    reaches the element any more. */
  pt_element_stop_and_remove (link->bin, webrtcbin);
  /* the relay taps, now that no streaming thread of the webrtcbin runs */
  g_mutex_lock (&link->lock);
  taps = link->taps;
  link->taps = g_ptr_array_new ();
  g_mutex_unlock (&link->lock);
  for (guint i = 0; i < taps->len; i++)
    pt_tap_free (g_ptr_array_index (taps, i));
  g_ptr_array_unref (taps);
  for (guint i = 0; i < branches->len; i++)
    pt_relay_branch_free (g_ptr_array_index (branches, i), link->bin);
  g_ptr_array_unref (branches);

  if (link->user_data_free)
    link->user_data_free (link->user_data);
  link->user_data = NULL;
  link->user_data_free = NULL;
}

gchar *
pt_link_sdp_session_id (const gchar * sdp)
{
  GstSDPMessage *msg = NULL;
  const GstSDPOrigin *origin;
  gchar *ret = NULL;

  if (sdp == NULL || gst_sdp_message_new_from_text (sdp, &msg) != GST_SDP_OK || msg == NULL)
    return NULL;
  origin = gst_sdp_message_get_origin (msg);
  if (origin && origin->sess_id)
    ret = g_strdup (origin->sess_id);
  gst_sdp_message_free (msg);
  return ret;
}

guint
pt_link_get_n_remote_streams (PtLink * link)
{
  guint n;

  g_mutex_lock (&link->lock);
  n = link->n_remote_streams;
  g_mutex_unlock (&link->lock);
  return n;
}

gboolean
pt_link_remote_has_data (PtLink * link)
{
  gboolean ret;

  g_mutex_lock (&link->lock);
  ret = link->remote_data;
  g_mutex_unlock (&link->lock);
  return ret;
}

GstWebRTCDataChannel *
pt_link_get_data_channel (PtLink * link)
{
  return link->data_channel ? gst_object_ref (link->data_channel) : NULL;
}

PtLinkRole
pt_link_get_role (PtLink * link)
{
  return link->role;
}

const gchar *
pt_link_get_peer_id (PtLink * link)
{
  return link->peer_id;
}

PtLinkState
pt_link_get_state (PtLink * link)
{
  PtLinkState state;

  g_mutex_lock (&link->lock);
  state = link->state;
  g_mutex_unlock (&link->lock);
  return state;
}

GstElement *
pt_link_get_webrtcbin (PtLink * link)
{
  return link->webrtcbin;
}

GstStructure *
pt_link_get_stats (PtLink * link)
{
  GstPromise *promise;
  GstStructure *ret = NULL;

  if (pt_link_is_closed (link))
    return NULL;
  promise = gst_promise_new ();
  g_signal_emit_by_name (link->webrtcbin, "get-stats", NULL, promise);
  /* gst_promise_wait has no timeout; webrtcbin always replies (or the
   * promise is interrupted on shutdown) */
  if (gst_promise_wait (promise) == GST_PROMISE_RESULT_REPLIED) {
    const GstStructure *s = gst_promise_get_reply (promise);

    if (s)
      ret = gst_structure_copy (s);
  }
  gst_promise_unref (promise);
  return ret;
}
