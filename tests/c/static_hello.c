#include <stdio.h>
int main(void) { puts("static TAG"); return 0; }
