/* peertree GStreamer elements — the relay tee and its branches
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Relaying: the RTP of each stream (a receiver link's relay pad at a viewer:
 * the packets as they reach its jitterbuffer, pt_link_get_relay_pad(); the
 * payloader at the source) is fed into a `tee` made with
 * pt_relay_make_tee(); each child's sender link (pt-link.h) then takes its
 * own branch of that tee, a PtRelayBranch:
 *
 *   relay pad (before the jitterbuffer) ─► tee (allow-not-linked) ─┬─► queue (leaky, 50 ms) ─► child A webrtcbin sink_N
 *                                                                  └─► queue (leaky, 50 ms) ─► child B webrtcbin sink_N
 *   upstream webrtcbin src_N (after it) ─► tee (allow-not-linked) ──► (local output, optional)
 *
 * Each child link answers its child's NACKs from its own rtprtxsend cache
 * (what it sent); a NACK never crosses the tee.
 * The RTP caps, payload type and SSRC pass unchanged, so the children's
 * PLI/FIR become upstream GstForceKeyUnit events that cross the tee back to
 * the upstream webrtcbin (or the encoder), which turns them into PLI/FIR
 * towards the parent (or a keyframe). The tee's keyframe gate lets one such
 * request through per 250 ms: one keyframe serves every child.
 *
 * Threading: a branch is made, linked, unlinked and freed by its PtLink
 * (from the owner's loop thread, under or outside the link's lock as
 * pt-link.c says); the gate and the keyframe-on-connect probes run in
 * streaming threads.
 */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

/**
 * pt_relay_make_tee:
 * @bin: bin to add the tee to
 * @upstream: (nullable): a receiver's RTP src pad to link into the tee
 *
 * Creates a `tee allow-not-linked=TRUE` in @bin, synced to its state, with
 * the keyframe gate on its sink pad, and links @upstream to it. May be
 * called from a link's pad_added callback.
 *
 * Returns: (transfer none): the tee, owned by @bin.
 */
GstElement *pt_relay_make_tee (GstBin *bin, const gchar *name, GstPad *upstream,
    GError **error);

/* RTP caps of a relay tee: its sink pad's, or its upstream peer's before the
 * first buffer has carried the CAPS event over. (transfer full) (nullable) */
GstCaps *pt_relay_get_tee_caps (GstElement *tee);

/**
 * pt_relay_hold_until_stream_start:
 * @sinkpad: the input of a new branch, before it is linked to a new src
 *     pad of a running tee
 *
 * Until a stream-start has reached @sinkpad, drops the sticky events and
 * the data that come before it. A tee already pushing on a src pad that is
 * not linked yet counts that pad's sticky events as sent; a link made in
 * the middle of such a pass makes it send caps and segment to the new peer
 * before the stream-start the link rescheduled (GStreamer 1.22: the branch
 * then warns "Sticky event misordering" when a new stream-start comes).
 * What is dropped stays pending on the tee's pad and follows the
 * stream-start in order; events that are not sticky (flushes) pass.
 */
void pt_relay_hold_until_stream_start (GstPad *sinkpad);

/**
 * pt_element_stop_and_remove:
 *
 * Locks @element's state, sets it to NULL and removes it from @bin (if it is
 * still there). Safe against a concurrent state change of @bin from another
 * thread: the bin skips an element whose state is locked, so the element is
 * never brought back up (threads running) before it is disposed of. Not from
 * one of @element's streaming threads.
 */
void pt_element_stop_and_remove (GstBin *bin, GstElement *element);

/* One child's branch of a relay tee: tee src pad → leaky queue → @sink (a
 * webrtcbin sink pad). */
typedef struct _PtRelayBranch PtRelayBranch;

/* Adds the branch's queue to @bin and links it to @sink; the tee side waits
 * for pt_relay_branch_link(). NULL with @error set on failure. */
PtRelayBranch *pt_relay_branch_new (GstBin *bin, GstElement *tee, GstPad *sink,
    GError **error);
/* Requests a tee src pad and links it to the queue (once the link is
 * started, so that the queue's task never meets a flushing webrtcbin pad).
 * @peer_id is for logs. */
gboolean pt_relay_branch_link (PtRelayBranch *branch, const gchar *peer_id, GError **error);
gboolean pt_relay_branch_is_linked (PtRelayBranch *branch);
/* Unlinks the tee pad once it is idle (the siblings keep flowing) and
 * releases it. Not from a streaming thread of the tee. */
void pt_relay_branch_unlink (PtRelayBranch *branch, const gchar *peer_id);
/* Stops and removes the queue from @bin and frees the branch (unlinked
 * first). */
void pt_relay_branch_free (PtRelayBranch *branch, GstBin *bin);

/* The child of @branch just connected (DTLS done): asks upstream for a
 * keyframe of its stream, at once at the source, with the next buffer at a
 * relay (see pt-relay.c). @tee and @queue_sink are the branch's, taken with
 * pt_relay_branch_get_pads() under the link's lock. */
void pt_relay_branch_get_pads (PtRelayBranch *branch, GstElement **tee, GstPad **queue_sink);
void pt_relay_request_keyframe_on_connect (GstElement *tee, GstPad *queue_sink);

G_END_DECLS
