#include <stdio.h>
void early_ctor_linked(void);
int main(int argc, char **argv) { early_ctor_linked(); printf("main %s\n", argc > 1 ? argv[1] : ""); return 0; }
