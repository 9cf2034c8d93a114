/* peertree GStreamer elements — webrtcbin set-up and ICE
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Everything a webrtcbin of peertree needs before it negotiates: the
 * element's link settings (PtLinkConfig), the process-wide DTLS certificate
 * made early, and the webrtcbin itself with its ICE agent restricted to the
 * configured local addresses (through libnice's NiceAgent). PtLink
 * (pt-link.c) negotiates with it; the relay tee and its branches are in
 * pt-relay.c.
 */
#define _DEFAULT_SOURCE             /* getifaddrs() */
#include "pt-webrtc.h"
#include "pt-link.h"

#include <string.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <ifaddrs.h>

#include <gio/gio.h>

#ifndef GST_USE_UNSTABLE_API
#define GST_USE_UNSTABLE_API
#endif
#include <gst/webrtc/webrtc.h>
#include <nice/agent.h>

#include "common/pt-element-packages.h"

GST_DEBUG_CATEGORY_STATIC (pt_webrtc_debug);
#define GST_CAT_DEFAULT pt_webrtc_debug

static void
init_debug (void)
{
  static gsize done;

  if (g_once_init_enter (&done)) {
    GST_DEBUG_CATEGORY_INIT (pt_webrtc_debug, "ptwebrtc", 0, "peertree webrtcbin set-up and ICE");
    g_once_init_leave (&done, 1);
  }
}

/* ---------------------------------------------------------------------- */
/* config */

void
pt_link_config_init (PtLinkConfig * config)
{
  memset (config, 0, sizeof (*config));
  config->latency_ms = PT_LINK_DEFAULT_LATENCY_MS;
  config->repair = TRUE;
  config->data_ordered = TRUE;
  config->data_max_retransmits = -1;
}

void
pt_link_config_clear (PtLinkConfig * config)
{
  g_clear_pointer (&config->local_addresses, g_strfreev);
  g_clear_pointer (&config->stun_server, g_free);
  g_clear_pointer (&config->turn_server, g_free);
}

gchar **
pt_webrtc_parse_address_list (const gchar * list)
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
pt_webrtc_prewarm (void)
{
  static gsize once = 0;

  init_debug ();
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
pt_webrtc_prewarm_wait (void)
{
  g_mutex_lock (&prewarm_lock);
  while (prewarm_running)
    g_cond_wait (&prewarm_cond, &prewarm_lock);
  g_mutex_unlock (&prewarm_lock);
}

/* ---------------------------------------------------------------------- */
/* webrtcbin factory */

/* RTCP bandwidth with repair: rtcp-fraction at or above 1 is an absolute
 * rate (rtpstats counts it in bits per second against 8 × the average
 * compound packet size). A NACK is AVPF early feedback, at most one between
 * two regular RTCP packets; a retry (the first NACK or its RTX lost) waits
 * for the next regular one, and one whose packet's deadline (the
 * jitterbuffer's latency) passes first is dropped. So the regular interval
 * bounds how many times a lost packet can be asked for: with ~100-byte
 * compound packets, 30 kbit/s gave ~85 ms (2 tries in 150 ms; at 5 % loss
 * per hop, depth 4 of the lab chain 92 %), 60 kbit/s gives ~42 ms (98.7-
 * 99.7 %; docs/repair.md). It costs ~20 kbit/s of RTCP each way per link.
 * With the defaults (rtcp-min-interval 5 s) 6 of 8 NACKs waited seconds. */
#define PT_REPAIR_RTCP_BITRATE 60000.0
/* how long a sender keeps what it sent, to answer NACKs */
#define PT_REPAIR_HISTORY_MS 1000

/* webrtcbin puts a `clocksync sync=TRUE` in front of each transport; in a
 * relay it would hold every packet for the pipeline latency. Forwarding must
 * never wait for a clock, so turn it off (as webrtcbin's own tests do).
 * With repair (@user_data), each rtpsession and rtprtxsend is set up for it
 * (see pt_webrtc_make_webrtcbin). */
static void
on_deep_element_added (GstBin * bin, GstBin * sub_bin, GstElement * element,
    gpointer user_data)
{
  GstElementFactory *factory = gst_element_get_factory (element);
  const gchar *name = factory ? GST_OBJECT_NAME (factory) : "";
  gboolean repair = GPOINTER_TO_INT (user_data);

  (void) sub_bin;

  if (g_strcmp0 (name, "clocksync") == 0) {
    GST_DEBUG_OBJECT (bin, "sync=FALSE on %" GST_PTR_FORMAT, element);
    g_object_set (element, "sync", FALSE, NULL);
  } else if (repair && g_strcmp0 (name, "rtpsession") == 0) {
    /* probation 0: 1.22's rtpsource compares the encoding name "rtx" with
     * webrtcbin's "RTX", takes the RTX SSRC for a new media source and holds
     * its first packet (the first repair) on probation */
    g_object_set (element, "probation", 0u, "rtcp-min-interval", (guint64) 0,
        "rtcp-fraction", PT_REPAIR_RTCP_BITRATE, NULL);
  } else if (repair && g_strcmp0 (name, "rtprtxsend") == 0) {
    g_object_set (element, "max-size-time", (guint) PT_REPAIR_HISTORY_MS,
        "max-size-packets", 0u, NULL);
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

guint
pt_link_config_start_latency (const PtLinkConfig * config)
{
  return config->adaptive_latency ? MIN (config->latency_ms,
      PT_LINK_ADAPTIVE_LATENCY_START_MS) : config->latency_ms;
}

GstElement *
pt_webrtc_make_webrtcbin (const gchar * name, const PtLinkConfig * config, GError ** error)
{
  GstElement *webrtcbin;

  init_debug ();

  webrtcbin = gst_element_factory_make ("webrtcbin", name);
  if (webrtcbin == NULL) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN,
        "The GStreamer element 'webrtcbin' is missing: install the Debian package %s",
        pt_element_package ("webrtcbin"));
    return NULL;
  }
  gst_object_ref_sink (webrtcbin);

  g_signal_connect (webrtcbin, "deep-element-added",
      G_CALLBACK (on_deep_element_added), GINT_TO_POINTER (config->repair));
  g_object_set (webrtcbin,
      "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_BUNDLE,
      "latency", pt_link_config_start_latency (config), NULL);
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
/* the remote-candidate gate (links with a TURN server) */

#define PT_ICE_GATE_HOLD_MS 1500

typedef struct {
  guint mline;
  gchar *candidate;
  gchar *address;
} PtHeldCandidate;

struct _PtIceGate {
  GMutex lock;
  GMainContext *context;
  PtIceGateAddFunc add;
  gpointer user_data;
  GList *held;                  /* PtHeldCandidate, in arrival order */
  GHashTable *natted;           /* host address -> GINT_TO_POINTER (TRUE: NATed, FALSE: public) */
  GSource *timeout;
};

static void
held_free (PtHeldCandidate * h)
{
  g_free (h->candidate);
  g_free (h->address);
  g_free (h);
}

gboolean
pt_webrtc_parse_candidate (const gchar * candidate, gchar ** address, gchar ** type,
    gchar ** raddr)
{
  g_auto (GStrv) tok = NULL;
  guint n;

  *address = *type = *raddr = NULL;
  if (candidate == NULL)
    return FALSE;
  if (g_str_has_prefix (candidate, "a="))
    candidate += 2;
  if (!g_str_has_prefix (candidate, "candidate:"))
    return FALSE;
  tok = g_strsplit (candidate + strlen ("candidate:"), " ", -1);
  n = g_strv_length (tok);
  /* foundation component transport priority address port typ TYPE [raddr R rport P] … */
  if (n < 8 || g_strcmp0 (tok[6], "typ") != 0)
    return FALSE;
  *address = g_strdup (tok[4]);
  *type = g_strdup (tok[7]);
  for (guint i = 8; i + 1 < n; i++)
    if (g_str_equal (tok[i], "raddr")) {
      *raddr = g_strdup (tok[i + 1]);
      break;
    }
  return TRUE;
}

gboolean
pt_webrtc_address_is_on_link (const gchar * address)
{
  g_autoptr (GInetAddress) a = g_inet_address_new_from_string (address);
  struct ifaddrs *ifs = NULL;
  gboolean found = FALSE;

  if (a == NULL || getifaddrs (&ifs) != 0)
    return FALSE;
  for (struct ifaddrs * i = ifs; i && !found; i = i->ifa_next) {
    g_autoptr (GSocketAddress) sa = NULL, sm = NULL;
    GInetAddress *ia, *im;
    const guint8 *pa, *pi, *pm;
    gsize len;

    if (i->ifa_addr == NULL || i->ifa_netmask == NULL ||
        (gint) i->ifa_addr->sa_family != (gint) g_inet_address_get_family (a) ||
        (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
      continue;
    len = i->ifa_addr->sa_family == AF_INET ? sizeof (struct sockaddr_in) :
        sizeof (struct sockaddr_in6);
    sa = g_socket_address_new_from_native (i->ifa_addr, len);
    sm = g_socket_address_new_from_native (i->ifa_netmask, len);
    if (!G_IS_INET_SOCKET_ADDRESS (sa) || !G_IS_INET_SOCKET_ADDRESS (sm))
      continue;
    ia = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (sa));
    im = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (sm));
    pa = g_inet_address_to_bytes (a);
    pi = g_inet_address_to_bytes (ia);
    pm = g_inet_address_to_bytes (im);
    len = g_inet_address_get_native_size (a);
    found = TRUE;
    for (gsize b = 0; b < len; b++)
      if ((pa[b] & pm[b]) != (pi[b] & pm[b]))
        found = FALSE;
  }
  freeifaddrs (ifs);
  return found;
}

/* with the lock: takes the held candidates for @address (all if NULL) off
 * the list, into @out (in order) when @keep, else frees them */
static void
gate_take_held_locked (PtIceGate * gate, const gchar * address, gboolean keep, GList ** out)
{
  for (GList * l = gate->held; l;) {
    GList *next = l->next;
    PtHeldCandidate *h = l->data;

    if (address == NULL || g_str_equal (h->address, address)) {
      gate->held = g_list_delete_link (gate->held, l);
      if (keep) {
        *out = g_list_append (*out, h);
      } else {
        GST_INFO ("remote host candidate %s is behind a NAT, not on a local link: "
            "not used (a TURN server cannot relay to it)", h->address);
        held_free (h);
      }
    }
    l = next;
  }
}

static void
gate_add_all (PtIceGate * gate, GList * list)
{
  for (GList * l = list; l; l = l->next) {
    PtHeldCandidate *h = l->data;

    gate->add (h->mline, h->candidate, gate->user_data);
  }
  g_list_free_full (list, (GDestroyNotify) held_free);
}

static gboolean
gate_timeout (gpointer data)
{
  PtIceGate *gate = data;
  GList *out = NULL;

  g_mutex_lock (&gate->lock);
  g_clear_pointer (&gate->timeout, g_source_unref);
  if (gate->held)
    GST_DEBUG ("%u remote host candidates without a reflexive one: used as they are",
        g_list_length (gate->held));
  gate_take_held_locked (gate, NULL, TRUE, &out);
  g_mutex_unlock (&gate->lock);
  gate_add_all (gate, out);
  return G_SOURCE_REMOVE;
}

PtIceGate *
pt_ice_gate_new (GMainContext * context, PtIceGateAddFunc add, gpointer user_data)
{
  PtIceGate *gate = g_new0 (PtIceGate, 1);

  init_debug ();
  g_mutex_init (&gate->lock);
  gate->context = g_main_context_ref (context);
  gate->add = add;
  gate->user_data = user_data;
  gate->natted = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return gate;
}

void
pt_ice_gate_push (PtIceGate * gate, guint mline, const gchar * candidate)
{
  g_autofree gchar *address = NULL, *type = NULL, *raddr = NULL;
  GList *out = NULL;
  gboolean add_now = TRUE;

  if (!pt_webrtc_parse_candidate (candidate, &address, &type, &raddr)) {
    gate->add (mline, candidate, gate->user_data);
    return;
  }

  g_mutex_lock (&gate->lock);
  if (g_str_equal (type, "host")) {
    gpointer natted;

    if (pt_webrtc_address_is_on_link (address)) {
      /* on one of our own links: a direct path exists */
    } else if (g_hash_table_lookup_extended (gate->natted, address, NULL, &natted)) {
      add_now = !GPOINTER_TO_INT (natted);
      if (!add_now)
        GST_INFO ("remote host candidate %s is behind a NAT: not used", address);
    } else {
      PtHeldCandidate *h = g_new0 (PtHeldCandidate, 1);

      h->mline = mline;
      h->candidate = g_strdup (candidate);
      h->address = g_strdup (address);
      gate->held = g_list_append (gate->held, h);
      add_now = FALSE;
      GST_DEBUG ("remote host candidate %s held until its reflexive candidate tells "
          "whether it is behind a NAT", address);
      if (gate->timeout == NULL) {
        gate->timeout = g_timeout_source_new (PT_ICE_GATE_HOLD_MS);
        g_source_set_callback (gate->timeout, gate_timeout, gate, NULL);
        g_source_set_static_name (gate->timeout, "[peertree] ICE host candidate hold");
        g_source_attach (gate->timeout, gate->context);
      }
    }
  } else if (raddr && (g_str_equal (type, "srflx") || g_str_equal (type, "relay")) &&
      !g_hash_table_contains (gate->natted, raddr)) {
    /* srflx: the NAT's address for host raddr — the host is NATed if they
     * differ. relay first (no srflx: the host is public, its srflx pruned as
     * redundant, or the peer has no STUN): take it as public. */
    gboolean natted = g_str_equal (type, "srflx") && !g_str_equal (address, raddr);

    g_hash_table_insert (gate->natted, g_strdup (raddr), GINT_TO_POINTER (natted));
    gate_take_held_locked (gate, raddr, !natted || pt_webrtc_address_is_on_link (raddr), &out);
  }
  g_mutex_unlock (&gate->lock);

  gate_add_all (gate, out);
  if (add_now)
    gate->add (mline, candidate, gate->user_data);
}

void
pt_ice_gate_free (PtIceGate * gate)
{
  if (gate == NULL)
    return;
  if (gate->timeout) {
    g_source_destroy (gate->timeout);
    g_source_unref (gate->timeout);
  }
  g_list_free_full (gate->held, (GDestroyNotify) held_free);
  g_hash_table_unref (gate->natted);
  g_main_context_unref (gate->context);
  g_mutex_clear (&gate->lock);
  g_free (gate);
}

/* ---------------------------------------------------------------------- */
/* stats */

static const GstStructure *
stats_field_structure (const GstStructure * stats, const gchar * name)
{
  const GValue *v = name ? gst_structure_get_value (stats, name) : NULL;

  return v && GST_VALUE_HOLDS_STRUCTURE (v) ? gst_value_get_structure (v) : NULL;
}

gboolean
pt_webrtc_stats_selected_pair (const GstStructure * stats, const gchar ** local_type,
    const gchar ** remote_type)
{
  *local_type = *remote_type = NULL;
  for (gint i = 0; stats && i < gst_structure_n_fields (stats); i++) {
    const GstStructure *t = stats_field_structure (stats, gst_structure_nth_field_name (stats, i));
    const GstStructure *pair, *l, *r;

    if (t == NULL || !gst_structure_has_field (t, "selected-candidate-pair-id"))
      continue;
    pair = stats_field_structure (stats,
        gst_structure_get_string (t, "selected-candidate-pair-id"));
    if (pair == NULL)
      continue;
    /* by id: GStreamer 1.22 names the local one's type "remote-candidate"
     * and the other way round */
    l = stats_field_structure (stats, gst_structure_get_string (pair, "local-candidate-id"));
    r = stats_field_structure (stats, gst_structure_get_string (pair, "remote-candidate-id"));
    *local_type = l ? gst_structure_get_string (l, "candidate-type") : NULL;
    *remote_type = r ? gst_structure_get_string (r, "candidate-type") : NULL;
    return *local_type != NULL;
  }
  return FALSE;
}

/* A numeric field of any integer or floating type, as a double. */
static gboolean
stats_number (const GstStructure * s, const gchar * field, gdouble * out)
{
  const GValue *v = gst_structure_get_value (s, field);
  GValue d = G_VALUE_INIT;

  if (v == NULL || !g_value_type_transformable (G_VALUE_TYPE (v), G_TYPE_DOUBLE))
    return FALSE;
  g_value_init (&d, G_TYPE_DOUBLE);
  if (!g_value_transform (v, &d))
    return FALSE;
  *out = g_value_get_double (&d);
  return TRUE;
}

static gboolean
stats_is_type (const GstStructure * s, GstWebRTCStatsType want)
{
  GstWebRTCStatsType type;

  return gst_structure_get_enum (s, "type", GST_TYPE_WEBRTC_STATS_TYPE, (gint *) & type)
      && type == want;
}

gboolean
pt_webrtc_stats_remote_fraction_lost (const GstStructure * stats, gdouble * fraction)
{
  gboolean found = FALSE;

  *fraction = 0;
  for (gint i = 0; stats && i < gst_structure_n_fields (stats); i++) {
    const GstStructure *t = stats_field_structure (stats, gst_structure_nth_field_name (stats, i));
    gdouble f;

    if (t == NULL || !stats_is_type (t, GST_WEBRTC_STATS_REMOTE_INBOUND_RTP) ||
        !stats_number (t, "fraction-lost", &f))
      continue;
    *fraction = found ? MAX (*fraction, f) : f;
    found = TRUE;
  }
  return found;
}

gboolean
pt_webrtc_stats_inbound_counts (const GstStructure * stats, guint64 * lost, guint64 * received)
{
  gboolean found = FALSE;

  *lost = *received = 0;
  for (gint i = 0; stats && i < gst_structure_n_fields (stats); i++) {
    const GstStructure *t = stats_field_structure (stats, gst_structure_nth_field_name (stats, i));
    gdouble l, r;

    if (t == NULL || !stats_is_type (t, GST_WEBRTC_STATS_INBOUND_RTP) ||
        !stats_number (t, "packets-received", &r))
      continue;
    if (!stats_number (t, "packets-lost", &l) || l < 0)
      l = 0;                    /* duplicates can make it negative */
    *lost += (guint64) l;
    *received += (guint64) r;
    found = TRUE;
  }
  return found;
}

/* ---------------------------------------------------------------------- */
/* ICE restart (GStreamer 1.22 has none: see pt-webrtc.h) */

/* libnice numbers a NiceAgent's streams from 1; webrtcbin makes one per
 * transport (one with max-bundle), so a few ids cover them */
#define PT_MAX_NICE_STREAMS 16

/* (transfer full) (nullable) */
static NiceAgent *
webrtcbin_nice_agent (GstElement * webrtcbin)
{
  g_autoptr (GstWebRTCICE) ice = NULL;
  GObject *agent = NULL;

  g_object_get (webrtcbin, "ice-agent", &ice, NULL);
  if (ice == NULL || !g_object_class_find_property (G_OBJECT_GET_CLASS (ice), "agent"))
    return NULL;
  g_object_get (ice, "agent", &agent, NULL);
  if (agent && !NICE_IS_AGENT (agent))
    g_clear_object (&agent);
  return (NiceAgent *) agent;
}

/* libnice 0.1.21's nice_agent_get_local_credentials() returns TRUE for a
 * stream that does not exist too (leaving the strings unset) */
static gboolean
nice_stream_exists (NiceAgent * agent, guint stream_id)
{
  gchar *ufrag = NULL, *pwd = NULL;
  gboolean ok = nice_agent_get_local_credentials (agent, stream_id, &ufrag, &pwd) &&
      ufrag != NULL;

  g_free (ufrag);
  g_free (pwd);
  return ok;
}

guint
pt_webrtc_restart_ice (GstElement * webrtcbin)
{
  NiceAgent *agent = webrtcbin_nice_agent (webrtcbin);
  guint n = 0;

  init_debug ();
  for (guint id = 1; agent && id <= PT_MAX_NICE_STREAMS; id++) {
    if (!nice_stream_exists (agent, id))
      continue;
    if (nice_agent_restart_stream (agent, id))
      n++;
  }
  GST_DEBUG_OBJECT (webrtcbin, "ICE restarted on %u streams", n);
  g_clear_object (&agent);
  return n;
}

GPtrArray *
pt_webrtc_local_candidates (GstElement * webrtcbin)
{
  NiceAgent *agent = webrtcbin_nice_agent (webrtcbin);
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);

  for (guint id = 1; agent && id <= PT_MAX_NICE_STREAMS; id++) {
    GSList *cands;

    if (!nice_stream_exists (agent, id))
      continue;
    /* RTP and RTCP are muxed: component 1 only */
    cands = nice_agent_get_local_candidates (agent, id, NICE_COMPONENT_TYPE_RTP);
    for (GSList * l = cands; l; l = l->next) {
      gchar *attr = nice_agent_generate_local_candidate_sdp (agent, l->data);

      if (attr && g_str_has_prefix (attr, "a=")) {
        g_ptr_array_add (out, g_strdup (attr + 2));
        g_free (attr);
      } else if (attr) {
        g_ptr_array_add (out, attr);
      }
    }
    g_slist_free_full (cands, (GDestroyNotify) nice_candidate_free);
  }
  g_clear_object (&agent);
  return out;
}

/* RFC 8839: ufrag ≥ 4, pwd ≥ 22 characters of ice-char */
static gchar *
random_ice_string (guint len)
{
  static const gchar chars[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  gchar *s = g_malloc (len + 1);

  for (guint i = 0; i < len; i++)
    s[i] = chars[g_random_int_range (0, (gint) sizeof (chars) - 1)];
  s[len] = '\0';
  return s;
}

static void
media_set_credentials (GstSDPMedia * media, const gchar * ufrag, const gchar * pwd)
{
  for (guint i = 0; i < gst_sdp_media_attributes_len (media); i++) {
    const GstSDPAttribute *a = gst_sdp_media_get_attribute (media, i);
    const gchar *value = g_strcmp0 (a->key, "ice-ufrag") == 0 ? ufrag :
        g_strcmp0 (a->key, "ice-pwd") == 0 ? pwd : NULL;
    GstSDPAttribute attr;

    if (value) {
      gst_sdp_attribute_set (&attr, a->key, value);
      gst_sdp_media_replace_attribute (media, i, &attr);
    }
  }
}

void
pt_webrtc_sdp_new_ice_credentials (GstSDPMessage * sdp)
{
  g_autofree gchar *ufrag = random_ice_string (16);
  g_autofree gchar *pwd = random_ice_string (32);

  for (guint i = 0; i < gst_sdp_message_attributes_len (sdp); i++) {
    const GstSDPAttribute *a = gst_sdp_message_get_attribute (sdp, i);
    const gchar *value = g_strcmp0 (a->key, "ice-ufrag") == 0 ? ufrag :
        g_strcmp0 (a->key, "ice-pwd") == 0 ? pwd : NULL;
    GstSDPAttribute attr;

    if (value) {
      gst_sdp_attribute_set (&attr, a->key, value);
      gst_sdp_message_replace_attribute (sdp, i, &attr);
    }
  }
  /* the message's own media, changed in place (GstSDPMessage has no
   * non-const accessor; replace_media would copy each one twice) */
  for (guint m = 0; m < gst_sdp_message_medias_len (sdp); m++)
    media_set_credentials ((GstSDPMedia *) gst_sdp_message_get_media (sdp, m), ufrag, pwd);
}

const gchar *
pt_webrtc_sdp_ice_ufrag (const GstSDPMessage * sdp)
{
  const gchar *ufrag = NULL;

  if (gst_sdp_message_medias_len (sdp) > 0)
    ufrag = gst_sdp_media_get_attribute_val (gst_sdp_message_get_media (sdp, 0), "ice-ufrag");
  if (ufrag == NULL)
    ufrag = gst_sdp_message_get_attribute_val (sdp, "ice-ufrag");
  return ufrag;
}
