#ifndef CAUSAL_TUNE_TURBOJPEG_SHIM_H
#define CAUSAL_TUNE_TURBOJPEG_SHIM_H
#include <turbojpeg.h>

static inline int ct_tjpf_rgb(void) { return TJPF_RGB; }
static inline int ct_tjflag_accuratedct(void) { return TJFLAG_ACCURATEDCT; }
#endif
