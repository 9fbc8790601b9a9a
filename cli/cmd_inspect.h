/* cmd_inspect.h — `tqrun inspect FILE`: prints a GGUF file's header,
 * metadata and tensor table, like llama.cpp's gguf dump tool. */
#ifndef TQ_CMD_INSPECT_H
#define TQ_CMD_INSPECT_H

/* argv[0] is "inspect", argv[1] the file. Writes the dump to stdout; on a
 * bad file or usage prints one "tqrun: error: ..." line to stderr. Returns
 * the process exit code: 0 done, 1 bad file, 2 usage error. */
int tq_cmd_inspect(int argc, char **argv);

#endif
