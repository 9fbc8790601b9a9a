/* main.c — tqrun's entry point: dispatches to a subcommand, generation being
 * the default. Only main() decides exit codes; everything below returns them. */
#include <string.h>

#include "cmd_inspect.h"
#include "cmd_tools.h"
#include "tq_cli.h"

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "perplexity") == 0) return tq_cmd_perplexity(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "inspect") == 0) return tq_cmd_inspect(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "quantize") == 0) return tq_cmd_quantize(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "bench") == 0) return tq_cmd_bench(argc - 1, argv + 1);
    return tq_cmd_generate(argc, argv);
}
