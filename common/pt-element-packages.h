/* The Debian 12 package that provides each GStreamer element peertree creates
 * by name, so that a missing element is reported with what to install.
 * scripts/check-elements (part of scripts/test) checks this table against
 * the sources (every element they name is here), against dpkg -S (each
 * package is the right one) and against scripts/deps (which installs them). */
#pragma once

#include <string.h>

typedef struct {
  const char *element;
  const char *package;
} PtElementPackage;

static const PtElementPackage pt_element_packages[] = {
  {"appsrc", "gstreamer1.0-plugins-base"},
  {"audioconvert", "gstreamer1.0-plugins-base"},
  {"audioresample", "gstreamer1.0-plugins-base"},
  {"audiotestsrc", "gstreamer1.0-plugins-base"},
  {"decodebin", "gstreamer1.0-plugins-base"},
  {"opusdec", "gstreamer1.0-plugins-base"},
  {"opusenc", "gstreamer1.0-plugins-base"},
  {"videoconvert", "gstreamer1.0-plugins-base"},
  {"videotestsrc", "gstreamer1.0-plugins-base"},
  {"autovideosink", "gstreamer1.0-plugins-good"},
  {"rtpopusdepay", "gstreamer1.0-plugins-good"},
  {"rtpopuspay", "gstreamer1.0-plugins-good"},
  {"rtpvp8depay", "gstreamer1.0-plugins-good"},
  {"rtpvp8pay", "gstreamer1.0-plugins-good"},
  {"rtph264depay", "gstreamer1.0-plugins-good"},
  {"rtph264pay", "gstreamer1.0-plugins-good"},
  {"vp8dec", "gstreamer1.0-plugins-good"},
  {"vp8enc", "gstreamer1.0-plugins-good"},
  {"dtlssrtpdec", "gstreamer1.0-plugins-bad"},
  {"dtlssrtpenc", "gstreamer1.0-plugins-bad"},
  {"h264parse", "gstreamer1.0-plugins-bad"},
  {"openh264dec", "gstreamer1.0-plugins-bad"},
  {"openh264enc", "gstreamer1.0-plugins-bad"},
  {"webrtcbin", "gstreamer1.0-plugins-bad"},
  {"nicesink", "gstreamer1.0-nice"},
  {"nicesrc", "gstreamer1.0-nice"},
  {"timeoverlay", "gstreamer1.0-x"},
  {"ximagesink", "gstreamer1.0-x"},
  {"xvimagesink", "gstreamer1.0-x"},
  {"x264enc", "gstreamer1.0-plugins-ugly"},
  {"capsfilter", "libgstreamer1.0-0"},
  {"clocksync", "libgstreamer1.0-0"},
  {"fakesink", "libgstreamer1.0-0"},
  {"filesrc", "libgstreamer1.0-0"},
  {"identity", "libgstreamer1.0-0"},
  {"queue", "libgstreamer1.0-0"},
  {"tee", "libgstreamer1.0-0"},
};

/* The package providing @element, or NULL when this table does not know it. */
static inline const char *
pt_element_package (const char *element)
{
  for (size_t i = 0; i < sizeof pt_element_packages / sizeof pt_element_packages[0]; i++)
    if (strcmp (pt_element_packages[i].element, element) == 0)
      return pt_element_packages[i].package;
  return NULL;
}
