/* workflow.c: see workflow.h.  (being written) */
#include "workflow.h"
