/* peertree GStreamer elements — webrtcbin set-up and ICE
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The settings every webrtcbin of one element shares (PtLinkConfig), the
 * webrtcbin factory that applies them (bundle policy, latency, STUN/TURN,
 * ICE limited to the configured local addresses through the NiceAgent) and
 * the early generation of the DTLS certificate. Used by PtLink (pt-link.h),
 * which negotiates over such a webrtcbin; the relay tee that feeds it is
 * pt-relay.h's.
 */
#pragma once

#include <gst/gst.h>
#include <gst/sdp/sdp.h>

G_BEGIN_DECLS

/**
 * PtLinkConfig:
 * @latency_ms: webrtcbin `latency` (jitterbuffer bound for lost packets); with
 *   @adaptive_latency, the upper bound of the latency that follows the link.
 * @adaptive_latency: a receiver link sets its latency from the measured
 *   round trip of repairs: clamp (2 × RTT + 150 ms, 150 ms, @latency_ms).
 * @repair: negotiate NACK and RTX (per-hop loss repair) and send RTCP
 *   feedback early enough for it.
 * @local_addresses: (nullable): %NULL-terminated list of IP addresses ICE may
 *   use; %NULL or empty means every interface.
 * @stun_server: (nullable): `stun://host:port`.
 * @turn_server: (nullable): `turn(s)://user:password@host:port`.
 * @fec_percentage: sender links of the source (peertreesink): ULPFEC packets
 *   for this share of the media packets, sent in RED; 0 = no FEC. A relay
 *   forwards the FEC it receives untouched (its sender links negotiate RED
 *   and ULPFEC and add none of their own: see pt_link_add_send_stream()).
 *
 * Settings shared by every webrtcbin of one element. pt_link_new() copies it.
 */
typedef struct {
  guint latency_ms;
  gboolean adaptive_latency;
  gboolean repair;
  gchar **local_addresses;
  gchar *stun_server;
  gchar *turn_server;
  guint fec_percentage;
  /* a data channel (PT_DATA_CHANNEL_LABEL) on every sender link, made
   * before the offer; its reliability (max_retransmits -1: reliable) */
  gboolean data;
  gboolean data_ordered;
  gint data_max_retransmits;
} PtLinkConfig;

#define PT_LINK_DEFAULT_LATENCY_MS 20
/* the adaptive latency: clamp (2 × RTT + MARGIN, MIN, latency_ms); until a
 * repair measured the round trip, MIN (START, latency_ms) */
#define PT_LINK_ADAPTIVE_LATENCY_START_MS 200
#define PT_LINK_ADAPTIVE_LATENCY_MIN_MS 150
#define PT_LINK_ADAPTIVE_LATENCY_MARGIN_MS 150
/* NACK retries: rtx-rtt + margin, within [min, max] (tune_rtx_retry) */
#define PT_LINK_RTX_RETRY_MARGIN_MS 10
#define PT_LINK_RTX_RETRY_MIN_MS 15
#define PT_LINK_RTX_RETRY_MAX_MS 500

/* webrtcbin's latency when a link starts */
guint pt_link_config_start_latency (const PtLinkConfig *config);

void pt_link_config_init (PtLinkConfig *config);
void pt_link_config_clear (PtLinkConfig *config);
/* Parses a comma-separated list ("127.0.0.1, 10.0.0.2"); empty → NULL. */
gchar **pt_webrtc_parse_address_list (const gchar *list);

/**
 * pt_webrtc_make_webrtcbin:
 *
 * Creates a webrtcbin set up for peertree: bundle-policy max-bundle, latency,
 * STUN/TURN, ICE limited to @config's local addresses (UDP only, keepalive
 * connchecks on) and its internal clocksync elements set to sync=FALSE so
 * that forwarding never waits for the pipeline clock.
 *
 * Returns: (transfer floating): the webrtcbin, or %NULL with @error set
 *   (missing plugin, bad address…).
 */
GstElement *pt_webrtc_make_webrtcbin (const gchar *name, const PtLinkConfig *config,
    GError **error);

/**
 * pt_webrtc_prewarm:
 *
 * Once per process, generates the DTLS certificate in a background thread,
 * so that the first link does not wait for it. Call it early (NULL→READY).
 */
void pt_webrtc_prewarm (void);
/* Waits for that thread (READY→NULL), so that a process quitting at once,
 * e.g. on an error, never exits while it is still running. */
void pt_webrtc_prewarm_wait (void);

/**
 * PtIceGate:
 *
 * What a link with a TURN server lets through of its peer's candidates. Its
 * relay candidate is paired with each of them, so the TURN server is asked
 * to send a connectivity check to each address; a peer's host candidate
 * behind a NAT (a private address of another network) is one the TURN
 * server has no route to, and coturn closes an allocation whose relayed
 * send fails (ENETUNREACH): ICE then fails on every relayed pair. So a
 * remote host candidate is held until the peer's server-reflexive candidate
 * for it arrives: one with another address means the host is behind a NAT,
 * and it is dropped unless it is on one of this machine's own links (the
 * same LAN); else (a relay candidate for it came first, or nothing for 1.5
 * s) it is used. Other candidates pass at once.
 *
 * All calls, and @add, on @context's thread.
 */
typedef struct _PtIceGate PtIceGate;
typedef void (*PtIceGateAddFunc) (guint mline, const gchar *candidate, gpointer user_data);

PtIceGate *pt_ice_gate_new (GMainContext *context, PtIceGateAddFunc add, gpointer user_data);
void pt_ice_gate_push (PtIceGate *gate, guint mline, const gchar *candidate);
void pt_ice_gate_free (PtIceGate *gate);

/* "candidate:F C udp P ADDR PORT typ TYPE [raddr R …]" (with or without
 * "a="): FALSE if it is not one */
gboolean pt_webrtc_parse_candidate (const gchar *candidate, gchar **address, gchar **type,
    gchar **raddr);
/* From webrtcbin's get-stats of a sending link: the highest fraction lost
 * (0 to 1) that the peer's last RTCP receiver reports give over the
 * streams (remote-inbound-rtp fraction-lost); FALSE if no report came yet */
gboolean pt_webrtc_stats_remote_fraction_lost (const GstStructure *stats, gdouble *fraction);
/* From webrtcbin's get-stats of a receiving link: the packets lost (after
 * repair: webrtcbin 1.22 takes packets-lost from the jitterbuffer's num-lost)
 * and received so far, every stream together (inbound-rtp
 * packets-lost, packets-received); FALSE if no stream has stats yet */
gboolean pt_webrtc_stats_inbound_counts (const GstStructure *stats, guint64 *lost,
    guint64 *received);
/* From webrtcbin's get-stats: the candidate types ("host", "srflx",
 * "prflx", "relay") of the selected pair, pointing into @stats; FALSE if none
 * is selected yet */
gboolean pt_webrtc_stats_selected_pair (const GstStructure *stats, const gchar **local_type,
    const gchar **remote_type);
/* TRUE if @address is on the subnet of one of this machine's interfaces */
gboolean pt_webrtc_address_is_on_link (const gchar *address);

/**
 * pt_webrtc_restart_ice:
 *
 * The ICE half of an ICE restart on @webrtcbin, which GStreamer 1.22 cannot
 * do itself (create-offer ignores its options, and create-offer/-answer
 * reuse the last description's ice-ufrag/ice-pwd: "FIXME: deal with ICE
 * restarts"): nice_agent_restart_stream() on each stream of its NiceAgent
 * drops the connectivity checks and the remote candidates but keeps the
 * selected pair, so media keeps its path until a new pair is selected.
 * Call it before the description with new credentials
 * (pt_webrtc_sdp_new_ice_credentials()) is set, since webrtcbin then gives
 * libnice those credentials. The local candidates stay (libnice gathers
 * once per stream): hand them to the peer again
 * (pt_webrtc_local_candidates()).
 *
 * Returns: the number of streams restarted (0: no NiceAgent).
 */
guint pt_webrtc_restart_ice (GstElement *webrtcbin);
/* The local candidates of every stream of @webrtcbin's NiceAgent, as
 * on-ice-candidate gives them ("candidate:…"); (transfer full) */
GPtrArray *pt_webrtc_local_candidates (GstElement *webrtcbin);
/* Replaces every ice-ufrag / ice-pwd of @sdp with one new random pair. */
void pt_webrtc_sdp_new_ice_credentials (GstSDPMessage *sdp);
/* The ice-ufrag of @sdp's first media (or of the session); NULL if none */
const gchar *pt_webrtc_sdp_ice_ufrag (const GstSDPMessage *sdp);

G_END_DECLS
