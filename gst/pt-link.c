/* peertree — signalling-agnostic WebRTC links between tree nodes
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "pt-link.h"

#include <string.h>

#ifndef GST_USE_UNSTABLE_API
#define GST_USE_UNSTABLE_API
#endif
#include <gst/webrtc/webrtc.h>
#include <gst/sdp/sdp.h>
#include <nice/agent.h>

#include "common/pt-element-packages.h"

GST_DEBUG_CATEGORY_STATIC (pt_link_debug);
#define GST_CAT_DEFAULT pt_link_debug

/* A relay child's branch: tee src pad → leaky queue → webrtcbin sink pad.
 * The tee pad is requested only once the link is started, so that the queue's
 * task never meets a flushing (NULL-state) webrtcbin pad. (Linking it later,
 * from webrtcbin's thread when ICE connects, made teardown hit a double free
 * in OpenSSL's per-thread cleanup under ASan in 3 of 6 runs.) */
typedef struct {
  GstElement *tee;
  GstPad *tee_pad;              /* NULL until linked */
  GstElement *queue;
} PtRelayBranch;

/* Relay queue: short and leaky, so a slow or unnegotiated child drops its own
 * stale packets and never stalls its siblings (see webrtc-relay.md). */
#define PT_RELAY_QUEUE_TIME (50 * GST_MSECOND)
#define PT_RELAY_QUEUE_BYTES (4 * 1024 * 1024)

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
/* config */

void
pt_link_config_init (PtLinkConfig * config)
{
  memset (config, 0, sizeof (*config));
  config->latency_ms = PT_LINK_DEFAULT_LATENCY_MS;
}

void
pt_link_config_clear (PtLinkConfig * config)
{
  g_clear_pointer (&config->local_addresses, g_strfreev);
  g_clear_pointer (&config->stun_server, g_free);
  g_clear_pointer (&config->turn_server, g_free);
}

void
pt_link_config_copy (PtLinkConfig * dest, const PtLinkConfig * src)
{
  dest->latency_ms = src->latency_ms;
  dest->local_addresses = g_strdupv (src->local_addresses);
  dest->stun_server = g_strdup (src->stun_server);
  dest->turn_server = g_strdup (src->turn_server);
}

gchar **
pt_link_parse_address_list (const gchar * list)
{
  g_auto (GStrv) parts = NULL;
  g_autoptr (GStrvBuilder) builder = NULL;

  if (list == NULL || *list == '\0')
    return NULL;

  builder = g_strv_builder_new ();
  parts = g_strsplit (list, ",", -1);
  for (guint i = 0; parts[i]; i++) {
    g_strstrip (parts[i]);
    if (*parts[i] != '\0')
      g_strv_builder_add (builder, parts[i]);
  }
  {
    gchar **ret = g_strv_builder_end (builder);

    if (ret[0] == NULL) {
      g_strfreev (ret);
      return NULL;
    }
    return ret;
  }
}

/* ---------------------------------------------------------------------- */
/* DTLS certificate */

static GMutex prewarm_lock;
static GCond prewarm_cond;
static gboolean prewarm_running;

static gpointer
prewarm_thread (gpointer data)
{
  GstElement *dec = gst_element_factory_make ("dtlssrtpdec", NULL);

  (void) data;
  if (dec)
    gst_object_unref (dec);
  GST_DEBUG ("DTLS certificate ready");
  g_mutex_lock (&prewarm_lock);
  prewarm_running = FALSE;
  g_cond_broadcast (&prewarm_cond);
  g_mutex_unlock (&prewarm_lock);
  return NULL;
}

void
pt_link_prewarm (void)
{
  static gsize once = 0;

  pt_link_init_debug ();
  if (g_once_init_enter (&once)) {
    /* The first DTLS element of a process generates the process-wide
     * certificate (an RSA key: ~250 ms here), which otherwise delays the
     * first link's handshake. */
    g_mutex_lock (&prewarm_lock);
    prewarm_running = TRUE;
    g_mutex_unlock (&prewarm_lock);
    g_thread_unref (g_thread_new ("pt-dtls-cert", prewarm_thread, NULL));
    g_once_init_leave (&once, 1);
  }
}

void
pt_link_prewarm_wait (void)
{
  g_mutex_lock (&prewarm_lock);
  while (prewarm_running)
    g_cond_wait (&prewarm_cond, &prewarm_lock);
  g_mutex_unlock (&prewarm_lock);
}

/* ---------------------------------------------------------------------- */
/* webrtcbin factory */

/* webrtcbin puts a `clocksync sync=TRUE` in front of each transport; in a
 * relay it would hold every packet for the pipeline latency. Forwarding must
 * never wait for a clock, so turn it off (as webrtcbin's own tests do). */
static void
on_deep_element_added (GstBin * bin, GstBin * sub_bin, GstElement * element,
    gpointer user_data)
{
  GstElementFactory *factory = gst_element_get_factory (element);

  (void) bin;
  (void) sub_bin;
  (void) user_data;

  if (factory && g_strcmp0 (GST_OBJECT_NAME (factory), "clocksync") == 0) {
    GST_DEBUG_OBJECT (bin, "sync=FALSE on %" GST_PTR_FORMAT, element);
    g_object_set (element, "sync", FALSE, NULL);
  }
}

static gboolean
configure_ice (GstElement * webrtcbin, const PtLinkConfig * config, GError ** error)
{
  g_autoptr (GstWebRTCICE) ice = NULL;
  g_autoptr (GObject) agent = NULL;

  g_object_get (webrtcbin, "ice-agent", &ice, NULL);
  if (ice == NULL) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
        "webrtcbin has no ICE agent");
    return FALSE;
  }
  if (g_object_class_find_property (G_OBJECT_GET_CLASS (ice), "ice-tcp"))
    g_object_set (ice, "ice-tcp", FALSE, NULL);

  if (!g_object_class_find_property (G_OBJECT_GET_CLASS (ice), "agent")) {
    if (config->local_addresses && config->local_addresses[0]) {
      g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NOT_IMPLEMENTED,
          "The ICE implementation %s cannot be limited to local addresses",
          G_OBJECT_TYPE_NAME (ice));
      return FALSE;
    }
    return TRUE;
  }
  g_object_get (ice, "agent", &agent, NULL);
  if (agent == NULL || !NICE_IS_AGENT (agent)) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_FAILED,
        "webrtcbin's ICE agent has no NiceAgent");
    return FALSE;
  }
  /* libnice 0.1.21 has no consent freshness: without keepalive connchecks a
   * vanished peer may never drive ICE to FAILED. */
  g_object_set (agent, "keepalive-conncheck", TRUE, NULL);
  /* Ta, the pacing of connectivity checks: libnice's 20 ms made ICE take
   * about three of them (60 ms) on a link with one candidate per side, half
   * of a viewer's wait for its first frame. 5 ms is RFC 8445's floor for
   * media sessions. */
  g_object_set (agent, "stun-pacing-timer", 5u, NULL);
  /* no UPnP port mapping: it only adds a gupnp thread and HTTP servers */
  if (g_object_class_find_property (G_OBJECT_GET_CLASS (agent), "upnp"))
    g_object_set (agent, "upnp", FALSE, NULL);

  for (guint i = 0; config->local_addresses && config->local_addresses[i]; i++) {
    NiceAddress addr;

    nice_address_init (&addr);
    if (!nice_address_set_from_string (&addr, config->local_addresses[i])) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
          "'%s' is not a valid local IP address", config->local_addresses[i]);
      return FALSE;
    }
    /* Must happen before set-local-description, which starts gathering;
     * once an address is added, libnice uses only the added ones (loopback
     * included, which it otherwise ignores). */
    if (!nice_agent_add_local_address (NICE_AGENT (agent), &addr)) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
          "Could not use local address '%s' for ICE", config->local_addresses[i]);
      return FALSE;
    }
  }
  return TRUE;
}

GstElement *
pt_link_make_webrtcbin (const gchar * name, const PtLinkConfig * config, GError ** error)
{
  GstElement *webrtcbin;

  pt_link_init_debug ();

  webrtcbin = gst_element_factory_make ("webrtcbin", name);
  if (webrtcbin == NULL) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN,
        "The GStreamer element 'webrtcbin' is missing: install the Debian package %s",
        pt_element_package ("webrtcbin"));
    return NULL;
  }
  gst_object_ref_sink (webrtcbin);

  g_signal_connect (webrtcbin, "deep-element-added",
      G_CALLBACK (on_deep_element_added), NULL);
  g_object_set (webrtcbin,
      "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_BUNDLE,
      "latency", config->latency_ms, NULL);
  if (config->stun_server && *config->stun_server)
    g_object_set (webrtcbin, "stun-server", config->stun_server, NULL);
  if (config->turn_server && *config->turn_server)
    g_object_set (webrtcbin, "turn-server", config->turn_server, NULL);

  if (!configure_ice (webrtcbin, config, error)) {
    gst_object_unref (webrtcbin);
    return NULL;
  }
  /* give back a floating ref, like gst_element_factory_make() */
  g_object_force_floating (G_OBJECT (webrtcbin));
  return webrtcbin;
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

void
pt_link_add_remote_candidate (PtLink * link, guint mline_index, const gchar * candidate)
{
  gboolean now;

  g_return_if_fail (link != NULL);

  /* an empty candidate is an end-of-candidates marker: nothing to do */
  if (candidate == NULL || *candidate == '\0')
    return;

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

/* The GstForceKeyUnit a child's PLI would produce, for the stream of @pad. */
static GstEvent *
keyframe_request_for (GstPad * pad)
{
  g_autoptr (GstCaps) caps = gst_pad_get_current_caps (pad);
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
  GstEvent *event = keyframe_request_for (pad);

  (void) info;
  (void) user_data;
  if (event)
    gst_pad_push_event (pad, event);
  return GST_PAD_PROBE_REMOVE;
}

/* Whether @tee relays what an upstream webrtcbin receives (a viewer's
 * fan-out), rather than what this process encodes (the source's). */
static gboolean
fanout_fed_by_webrtcbin (GstElement * tee)
{
  g_autoptr (GstPad) sink = gst_element_get_static_pad (tee, "sink");
  g_autoptr (GstPad) peer = sink ? gst_pad_get_peer (sink) : NULL;
  g_autoptr (GstElement) up = peer ? gst_pad_get_parent_element (peer) : NULL;
  GstElementFactory *f = up ? gst_element_get_factory (up) : NULL;

  return f && g_strcmp0 (GST_OBJECT_NAME (f), "webrtcbin") == 0;
}

/* A sender's child is reachable (DTLS done, SRTP keys set): ask upstream for
 * a keyframe of each stream now, instead of waiting for the child to see its
 * first packet through its jitterbuffer and send a PLI back. The request
 * carries the stream's SSRC and payload type, as a child's PLI would, and
 * the fan-out's coalescing applies.
 * At the source the request only reaches the encoder: it is pushed at once,
 * from this (webrtcbin's) thread, and the next frame is a keyframe. At a
 * relay it becomes a PLI of the upstream webrtcbin, which may be sent
 * through OpenSSL from the pushing thread, and OpenSSL's per-thread state
 * must stay in threads that outlive the link (see request_keyframe in
 * gstpeertreesrc.c): there it goes with the stream's next buffer, from the
 * streaming thread. */
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
      PtRelayBranch *br = g_ptr_array_index (link->branches, i);

      g_ptr_array_add (pairs, gst_object_ref (br->tee));
      g_ptr_array_add (pairs, gst_element_get_static_pad (br->queue, "sink"));
    }
  }
  g_mutex_unlock (&link->lock);

  for (guint i = 0; i + 1 < pairs->len; i += 2) {
    GstPad *qsink = g_ptr_array_index (pairs, i + 1);

    if (fanout_fed_by_webrtcbin (g_ptr_array_index (pairs, i))) {
      gst_pad_add_probe (qsink, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
          ask_keyframe_on_buffer, NULL, NULL);
    } else {
      GstEvent *event = keyframe_request_for (qsink);

      if (event)
        gst_pad_push_event (qsink, event);
    }
  }
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
  webrtcbin = pt_link_make_webrtcbin (name, config, error);
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
link_branch_locked (PtLink * link, PtRelayBranch * br, GError ** error)
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
  ret = gst_pad_link (br->tee_pad, qsink);
  if (GST_PAD_LINK_FAILED (ret)) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
        "Could not link %s to the relay queue: %s", GST_ELEMENT_NAME (br->tee),
        gst_pad_link_get_name (ret));
    gst_element_release_request_pad (br->tee, br->tee_pad);
    gst_clear_object (&br->tee_pad);
    return FALSE;
  }
  GST_DEBUG ("link %s: linked %s:%s", link->peer_id, GST_DEBUG_PAD_NAME (br->tee_pad));
  return TRUE;
}

/* called with lock */
static gboolean
link_branches_locked (PtLink * link, GError ** error)
{
  gboolean ok = TRUE;

  for (guint i = 0; i < link->branches->len && ok; i++) {
    PtRelayBranch *br = g_ptr_array_index (link->branches, i);

    if (br->tee_pad == NULL)
      ok = link_branch_locked (link, br, error);
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
  g_autoptr (GstPad) qsrc = NULL;
  GstElement *queue;
  PtRelayBranch *br;
  gboolean ok = TRUE;

  g_return_val_if_fail (link != NULL, FALSE);
  g_return_val_if_fail (GST_IS_ELEMENT (tee), FALSE);

  caps = pt_link_get_fanout_caps (tee);
  if (caps == NULL || !gst_caps_is_fixed (caps)) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
        "Relay stream %s has no RTP caps yet", GST_ELEMENT_NAME (tee));
    return FALSE;
  }

  wpad = pt_link_add_send_stream (link, caps, error);
  if (wpad == NULL)
    return FALSE;

  queue = gst_element_factory_make ("queue", NULL);
  if (queue == NULL) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN,
        "The GStreamer element 'queue' is missing: install the Debian package %s",
        pt_element_package ("queue"));
    return FALSE;
  }
  g_object_set (queue, "leaky", 2 /* downstream: drop the oldest */ ,
      "max-size-buffers", 0, "max-size-bytes", PT_RELAY_QUEUE_BYTES,
      "max-size-time", (guint64) PT_RELAY_QUEUE_TIME, "silent", TRUE, NULL);
  gst_bin_add (link->bin, queue);
  qsrc = gst_element_get_static_pad (queue, "src");
  if (GST_PAD_LINK_FAILED (gst_pad_link (qsrc, wpad))) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
        "Could not link the relay queue to webrtcbin");
    gst_bin_remove (link->bin, queue);
    return FALSE;
  }

  br = g_new0 (PtRelayBranch, 1);
  br->tee = gst_object_ref (tee);
  br->queue = gst_object_ref (queue);

  g_mutex_lock (&link->lock);
  g_ptr_array_add (link->branches, br);
  if (link->started && !link->closed)
    ok = link_branch_locked (link, br, error);
  g_mutex_unlock (&link->lock);
  return ok;
}

GstCaps *
pt_link_get_fanout_caps (GstElement * tee)
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
pt_link_make_fanout (GstBin * bin, const gchar * name, GstPad * upstream, GError ** error)
{
  GstElement *tee = gst_element_factory_make ("tee", name);
  g_autoptr (GstPad) sink = NULL;

  pt_link_init_debug ();

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

static void
unlink_branch (PtLink * link, PtRelayBranch * br)
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
    GST_WARNING ("link %s: tee pad never went idle, unlinking anyway", link->peer_id);
    gst_pad_unlink (br->tee_pad, d->peer);
    d->done = TRUE;
  }
  g_mutex_unlock (&d->lock);
  pt_unlink_data_unref (d);

  gst_element_release_request_pad (br->tee, br->tee_pad);
  gst_clear_object (&br->tee_pad);
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

  /* 2. detach relay branches from the shared tees (siblings keep flowing) */
  for (guint i = 0; i < branches->len; i++)
    unlink_branch (link, g_ptr_array_index (branches, i));

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
  for (guint i = 0; i < branches->len; i++) {
    PtRelayBranch *br = g_ptr_array_index (branches, i);

    pt_element_stop_and_remove (link->bin, br->queue);
    gst_object_unref (br->queue);
    gst_object_unref (br->tee);
    g_free (br);
  }
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
