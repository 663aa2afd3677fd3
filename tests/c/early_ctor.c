/* A library whose constructor opens a file: linked into a program, its constructor runs before
 * the preload library's own, so the preload must start early to record the open. */
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void early(void) { close(open("/etc/hostname", O_RDONLY)); }
void early_ctor_linked(void) {}
