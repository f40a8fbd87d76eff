/* calendar.c: see calendar.h.  (being written) */
#include "calendar.h"
