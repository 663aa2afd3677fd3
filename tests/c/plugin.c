/* A library the objects program loads at run time (tests/tests/loaded_objects.rs). Built
 * twice, as libplugin.so and libplugin2.so. */
int plugin_value(void) { return 42; }
