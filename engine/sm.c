/* sm.c: see sm.h.  (being written) */
#include "sm.h"
