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
} PtLinkConfig;

#define PT_LINK_DEFAULT_LATENCY_MS 20
/* the adaptive latency: clamp (2 × RTT + MARGIN, MIN, latency_ms) */
#define PT_LINK_ADAPTIVE_LATENCY_MIN_MS 150
#define PT_LINK_ADAPTIVE_LATENCY_MARGIN_MS 150

void pt_link_config_init (PtLinkConfig *config);
void pt_link_config_clear (PtLinkConfig *config);
void pt_link_config_copy (PtLinkConfig *dest, const PtLinkConfig *src);
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

G_END_DECLS
