/* peertree — signalling-agnostic WebRTC links between tree nodes
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A #PtLink wraps one webrtcbin that talks to exactly one remote peer:
 *
 *  - a *sender* link (parent side, one per child) offers send-only streams;
 *  - a *receiver* link (child side, one per node) answers its parent's offer.
 *
 * The link knows nothing about signalling: it hands out its local SDP and ICE
 * candidates through #PtLinkCallbacks and takes the remote ones through
 * pt_link_set_remote_description() and pt_link_add_remote_candidate().
 *
 * Threading: every callback but @pad_added runs on the #GMainContext given to
 * pt_link_new() (in the order the events happened), never after
 * pt_link_close() has returned. @pad_added runs synchronously in a streaming
 * thread, since the pad must be linked before the first buffer is pushed.
 * pt_link_close() must be called from a thread that is not one of the link's
 * streaming threads (typically the owner's main context).
 *
 * Relaying: a receiver link's RTP as it arrives (pt_link_get_relay_pad(),
 * before the jitterbuffer) is fed into a relay tee
 * (pt_relay_make_tee(), pt-relay.h); each child's sender link then takes its
 * own branch of that tee with pt_link_add_relay_stream(). The webrtcbin
 * itself is made by pt_webrtc_make_webrtcbin() (pt-webrtc.h).
 */
#pragma once

#include <gst/gst.h>
#ifndef GST_USE_UNSTABLE_API
#define GST_USE_UNSTABLE_API
#endif
#include <gst/webrtc/webrtc.h>

#include "pt-data.h"
#include "pt-relay.h"
#include "pt-webrtc.h"

G_BEGIN_DECLS

/**
 * PtLinkRole:
 * @PT_LINK_ROLE_SENDER: parent side of a tree edge; always the offerer.
 * @PT_LINK_ROLE_RECEIVER: child side of a tree edge; always the answerer.
 */
typedef enum {
  PT_LINK_ROLE_SENDER,
  PT_LINK_ROLE_RECEIVER,
} PtLinkRole;

/**
 * PtLinkState:
 * Connection state of a link, derived from webrtcbin's ICE connection state.
 */
typedef enum {
  PT_LINK_STATE_NEW,
  PT_LINK_STATE_CONNECTING,
  PT_LINK_STATE_CONNECTED,
  PT_LINK_STATE_DISCONNECTED,
  PT_LINK_STATE_FAILED,
  PT_LINK_STATE_CLOSED,
} PtLinkState;

const gchar *pt_link_state_to_string (PtLinkState state);

/*
 * Liveness and ICE restart. libnice 0.1.21 (without RFC 7675 consent
 * freshness, which webrtcbin 1.22 does not enable) reports a dead path as
 * failed only after its 50 s keepalive timeout, and never as disconnected:
 * a link checks itself that it receives packets (media, RTCP, DTLS; with
 * repair, RTCP flows both ways every few tens of ms even without media). A
 * connected link that receives nothing for PT_LINK_STALL_MS is reported
 * disconnected. A link that was connected and goes disconnected or failed
 * is then saved by ICE restarts if it can: the sender (the offerer) waits
 * PT_LINK_ICE_RESTART_GRACE_MS (nothing if ICE failed), then makes an offer
 * with new ICE credentials, up to PT_LINK_ICE_RESTART_ATTEMPTS of them
 * PT_LINK_ICE_RESTART_INTERVAL_MS apart; the receiver answers such a
 * re-offer on the same link (same webrtcbin, same DTLS session: media
 * resumes on the new pair). The link stays "disconnected" meanwhile, and
 * is reported "failed" when the restarts did not bring packets back (the
 * receiver: PT_LINK_ICE_RESTART_WAIT_MS after it went disconnected, or
 * later after each restart offer) — the owner's old fallback then runs
 * (the fan-out drops the child, the upstream asks for a new parent).
 *
 * A path can die one way only: a NAT that lost its binding drops what the
 * sender sends to the old mapping, while what the receiver sends makes a
 * new one and still arrives. The receiver then hears nothing, but cannot
 * restart ICE (only the offerer can), and the sender still hears it. So the
 * sender also reads what its child reports (RTCP receiver reports): when
 * it has sent packets for PT_LINK_PEER_STALL_MS and no report block has
 * shown a higher sequence number than before, the child receives nothing:
 * the link is disconnected as if the sender heard nothing itself (a report
 * that moves on ends it).
 */
#define PT_LINK_LIVENESS_TICK_MS 250
#define PT_LINK_STALL_MS 1500
/* a browser reports about once a second: two reports missed, and a margin */
#define PT_LINK_PEER_STALL_MS 2500
/* without repair, RTCP only every 5 s (± 50 %) */
#define PT_LINK_STALL_NO_REPAIR_MS 10000
#define PT_LINK_ICE_RESTART_GRACE_MS 1000
#define PT_LINK_ICE_RESTART_ATTEMPTS 2
#define PT_LINK_ICE_RESTART_INTERVAL_MS 2500
#define PT_LINK_ICE_RESTART_WAIT_MS (PT_LINK_ICE_RESTART_GRACE_MS + \
    PT_LINK_ICE_RESTART_ATTEMPTS * PT_LINK_ICE_RESTART_INTERVAL_MS + 1500)


typedef struct _PtLink PtLink;

/**
 * PtLinkCallbacks:
 * @local_description: send this SDP (type "offer" or "answer") to the peer.
 * @local_candidate: send this ICE candidate to the peer.
 * @state_changed: the connection state changed.
 * @error: negotiation failed; the link is useless and should be closed.
 * @pad_added: (receiver) a new RTP src pad appeared on the webrtcbin; called
 *   synchronously from a streaming thread. Link it before returning.
 * @data_channel: (receiver) the parent opened the tree's data channel
 *   (PT_DATA_CHANNEL_LABEL); called synchronously from a webrtcbin thread,
 *   so that its signals are connected before its first message.
 *
 * Any member may be %NULL.
 */
typedef struct {
  void (*local_description) (PtLink *link, const gchar *type, const gchar *sdp,
      gpointer user_data);
  void (*local_candidate) (PtLink *link, guint mline_index, const gchar *candidate,
      gpointer user_data);
  void (*state_changed) (PtLink *link, PtLinkState state, gpointer user_data);
  void (*error) (PtLink *link, const GError *error, gpointer user_data);
  void (*pad_added) (PtLink *link, GstPad *pad, gpointer user_data);
  void (*data_channel) (PtLink *link, GstWebRTCDataChannel *channel, gpointer user_data);
} PtLinkCallbacks;

/**
 * pt_link_new:
 * @role: sender (offers) or receiver (answers)
 * @peer_id: the remote peer's id, for logs and for the owner's bookkeeping
 * @bin: the bin the webrtcbin is added to (the link keeps a ref)
 * @context: (nullable): where callbacks run; %NULL = thread-default context
 *   of the caller
 *
 * Creates the webrtcbin and adds it to @bin (still in NULL state). For a
 * sender, add streams with pt_link_add_send_stream() or
 * pt_link_add_relay_stream(), then call pt_link_start(): the offer follows
 * as soon as every stream has codec preferences.
 * For a receiver, call pt_link_start() then pt_link_set_remote_description()
 * with the parent's offer; the answer is produced automatically.
 *
 * Returns: (transfer full): a new link, or %NULL with @error set.
 */
PtLink *pt_link_new (PtLinkRole role, const gchar *peer_id, GstBin *bin,
    const PtLinkConfig *config, const PtLinkCallbacks *callbacks, gpointer user_data,
    GDestroyNotify user_data_free, GMainContext *context, GError **error);

PtLink *pt_link_ref (PtLink *link);
void pt_link_unref (PtLink *link);

/* a field of a relayed stream's caps: it carries its parent's ULPFEC
 * packets (a RED/ULPFEC offer came from the parent) */
#define PT_LINK_CAPS_FEC "peertree-fec"

/**
 * pt_link_add_send_stream:
 * @rtp_caps: fixed `application/x-rtp` caps with media, encoding-name,
 *   payload, clock-rate and ssrc (plus any rtcp-fb-* / extmap-* fields)
 *
 * Sender only, before pt_link_start(). Requests the next `sink_%u` pad by
 * explicit name and makes its transceiver SENDONLY with @rtp_caps as codec
 * preferences, so the offer can be made before media flows.
 *
 * Returns: (transfer full): the webrtcbin sink pad to link RTP into.
 */
GstPad *pt_link_add_send_stream (PtLink *link, GstCaps *rtp_caps, GError **error);

/**
 * pt_link_add_relay_stream:
 * @tee: a relay tee made by pt_relay_make_tee() whose sink pad has caps
 *
 * Sender only. Adds a send stream with the tee's RTP caps, a short
 * leaky queue (added to the link's bin) and links tee → queue → webrtcbin
 * (the tee side once the link is started). The branch is unlinked and removed
 * by pt_link_close().
 */
gboolean pt_link_add_relay_stream (PtLink *link, GstElement *tee, GError **error);

/**
 * pt_link_get_relay_pad:
 * @pad: a src pad of the receiver's webrtcbin, in the pad_added callback
 *
 * Receiver only. The pad to feed the relay tee of @pad's stream with: it
 * carries the same stream (caps, SSRC) but every packet as it reaches the
 * jitterbuffer, before any reordering or wait for a lost packet, repaired
 * packets (RTX) included. @pad itself, after the jitterbuffer, is for
 * local decoding and must stay linked (the jitterbuffer, which sends this
 * node's NACKs, runs only while it is). A keyframe request sent up this pad
 * goes to @pad (a PLI/FIR to the parent); other upstream events stop here.
 * Packets flow once pad_added returns.
 *
 * Returns: (transfer full) (nullable): the pad, or %NULL if @pad's
 *   jitterbuffer is unknown.
 */
GstPad *pt_link_get_relay_pad (PtLink *link, GstPad *pad);

/**
 * pt_link_get_repair_stats:
 * @webrtc_stats: (nullable): the link's pt_link_get_stats(), for a sender's
 *   NACK and PLI counts
 *
 * Repair counters. Sender: num-rtx-requests and num-rtx-packets (its
 * rtprtxsend: NACKed packets asked and resent), nack-count and pli-count
 * (outbound-rtp, from the child). Receiver: latency (ms, now), num-pushed,
 * num-lost, rtx-count, rtx-success-count, rtx-rtt (ns, 0 before a repair)
 * of the jitterbuffers, num-rtx-requests, num-rtx-packets,
 * num-rtx-assoc-packets of its rtprtxreceive. Both: enabled.
 *
 * Returns: (transfer full): a "repair" structure.
 */
GstStructure *pt_link_get_repair_stats (PtLink *link, const GstStructure *webrtc_stats);

/* Brings the webrtcbin (and relay queues) to the bin's state. */
gboolean pt_link_start (PtLink *link);

/* type is "offer" or "answer". Errors are reported through the error callback. */
void pt_link_set_remote_description (PtLink *link, const gchar *type, const gchar *sdp);
/* Candidates that arrive before the remote description are queued. */
void pt_link_add_remote_candidate (PtLink *link, guint mline_index, const gchar *candidate);

/* The session id of an SDP's o= line (a new peer connection has a new one,
 * a renegotiation keeps it), or NULL if @sdp does not parse. */
gchar *pt_link_sdp_session_id (const gchar *sdp);

/* Number of media the remote offer sends us (receiver; 0 before the offer). */
guint pt_link_get_n_remote_streams (PtLink *link);
/* The remote offer has a data channel (an application m-line; receiver). */
gboolean pt_link_remote_has_data (PtLink *link);
/* Sender with config->data: the data channel, made by pt_link_start().
 * (transfer full) (nullable) */
GstWebRTCDataChannel *pt_link_get_data_channel (PtLink *link);

/* ICE restarts this link made (sender) or answered (receiver) */
guint pt_link_get_ice_restarts (PtLink *link);

PtLinkRole pt_link_get_role (PtLink *link);
const gchar *pt_link_get_peer_id (PtLink *link);
PtLinkState pt_link_get_state (PtLink *link);
/* (transfer none) */
GstElement *pt_link_get_webrtcbin (PtLink *link);

/**
 * pt_link_get_stats:
 *
 * Blocks until webrtcbin answers `get-stats`. Do not call from
 * a streaming thread or a link callback of the same link.
 *
 * Returns: (transfer full) (nullable): webrtcbin's stats structure.
 */
GstStructure *pt_link_get_stats (PtLink *link);

/**
 * pt_link_close:
 *
 * Disconnects every signal handler, blocks and unlinks relay branches,
 * sets the webrtcbin to NULL and removes it from the bin. No callback runs
 * after this returns. Idempotent. Not from a streaming thread.
 */
void pt_link_close (PtLink *link);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PtLink, pt_link_unref)

G_END_DECLS
