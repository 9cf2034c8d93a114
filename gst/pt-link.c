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


GST_DEBUG_CATEGORY_STATIC (pt_link_debug);
#define GST_CAT_DEFAULT pt_link_debug


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

  gulong negotiation_id;
  gulong candidate_id;
  gulong ice_state_id;
  gulong conn_state_id;         /* sender */
  gulong pad_added_id;

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

  PtIceGate *ice_gate;          /* with a TURN server: the peer's candidates pass it */
};

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
      if (link->callbacks.state_changed)
        link->callbacks.state_changed (link, ev->state, link->user_data);
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
    publish_and_set_local (link, desc);
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
  if (!link->closed && link->role == PT_LINK_ROLE_SENDER) {
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
      if (link->renegotiate) {
        link->renegotiate = FALSE;
        link->negotiating = again = TRUE;
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

    for (guint i = 0; i < gst_sdp_message_medias_len (msg); i++) {
      const GstSDPMedia *media = gst_sdp_message_get_media (msg, i);

      if (gst_sdp_media_get_port (media) == 0)
        continue;
      if (gst_sdp_media_get_attribute_val (media, "recvonly")
          || gst_sdp_media_get_attribute_val (media, "inactive"))
        continue;
      if (g_strcmp0 (gst_sdp_media_get_media (media), "application") == 0)
        continue;
      n++;
    }
    g_mutex_lock (&link->lock);
    link->n_remote_streams = n;
    g_mutex_unlock (&link->lock);
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
  if (!link->closed && link->state != state) {
    link->state = state;
    changed = TRUE;
  }
  g_mutex_unlock (&link->lock);

  if (changed) {
    PtEvent *ev = g_new0 (PtEvent, 1);

    GST_DEBUG ("link %s: %s", link->peer_id, pt_link_state_to_string (state));
    ev->kind = PT_EVENT_STATE;
    ev->state = state;
    pt_link_post (link, ev);
  }
}

static void
on_pad_added (GstElement * webrtcbin, GstPad * pad, gpointer user_data)
{
  PtLink *link = user_data;

  (void) webrtcbin;

  if (GST_PAD_DIRECTION (pad) != GST_PAD_SRC || pt_link_is_closed (link))
    return;
  GST_DEBUG ("link %s: new src pad %s", link->peer_id, GST_PAD_NAME (pad));
  if (link->callbacks.pad_added)
    link->callbacks.pad_added (link, pad, link->user_data);
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
  link->state = PT_LINK_STATE_NEW;
  g_queue_init (&link->pending_candidates);
  link->branches = g_ptr_array_new ();
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
  gst_clear_object (&link->webrtcbin);
  gst_clear_object (&link->bin);
  g_main_context_unref (link->context);
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

    for (guint i = 0; i < gst_caps_get_size (prefs); i++)
      gst_structure_remove_fields (gst_caps_get_structure (prefs, i),
          "seqnum-offset", "timestamp-offset", "seqnum-base", "clock-base", NULL);
    g_object_set (trans, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY,
        "codec-preferences", prefs, NULL);
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
  GPtrArray *branches;
  GstElement *webrtcbin;

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
  g_mutex_unlock (&link->lock);

  GST_INFO ("link %s: closing", link->peer_id);

  /* 1. no handler may reach the owner any more */
  g_clear_signal_handler (&link->negotiation_id, webrtcbin);
  g_clear_signal_handler (&link->candidate_id, webrtcbin);
  g_clear_signal_handler (&link->ice_state_id, webrtcbin);
  g_clear_signal_handler (&link->conn_state_id, webrtcbin);
  g_clear_signal_handler (&link->pad_added_id, webrtcbin);

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
