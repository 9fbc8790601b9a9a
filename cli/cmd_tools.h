/* cmd_tools.h — tqrun's tool subcommands: `tqrun quantize` (llama-quantize's
 * file, per-tensor type mix included) and `tqrun bench` (llama-bench's
 * measurements and table). */
#ifndef TQ_CMD_TOOLS_H
#define TQ_CMD_TOOLS_H

/* argv[0] is the subcommand's name. Return the process exit code: 0 done,
 * 1 failed (one "tqrun: error: ..." line on stderr), 2 usage error. */
int tq_cmd_quantize(int argc, char **argv);
int tq_cmd_bench(int argc, char **argv);

#endif
