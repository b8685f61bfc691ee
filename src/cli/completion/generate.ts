import type { Argument, Command, Option } from 'commander';
import { installExamples } from '../commands/completion.js';
import { completionValues } from './values.js';

/**
 * Shell completion scripts generated from the commander command tree: every visible command,
 * alias, option and argument is read from the program, so a new command is completed without
 * editing anything here. The output depends only on the tree (tree order, no dates), so the copies
 * in completions/ can be compared with it in a test.
 */

export type Shell = 'bash' | 'zsh' | 'fish';

export function completionScript(program: Command, shell: Shell): string {
  const root = describeCommand(program, [], []);
  switch (shell) {
    case 'bash':
      return bashScript(root);
    case 'zsh':
      return zshScript(root);
    case 'fish':
      return fishScript(root);
  }
}

// ---------------------------------------------------------------------------------------------
// The model: what the scripts need to know about the tree.

interface OptionSpec {
  /** Short flag first: ['-q', '--quiet']. */
  flags: string[];
  description: string;
  takesValue: boolean;
  /** `--opt [value]`: the value may be left out. */
  optionalValue: boolean;
  /** 'path' for `--state <path>`. */
  valueName: string;
  choices: readonly string[] | undefined;
  /** The value is a comma-separated list of the choices (`--announce mdns,consul`). */
  list: boolean;
  /** Words the program lists at completion time (`nodes list` for `--node`). */
  listed: Listed | undefined;
  /** Without choices or a list: whether the value is a file name (else free text: no offer). */
  files: boolean;
}

interface Listed {
  command: readonly string[];
  copiedOptions: readonly string[];
}

interface ArgumentSpec {
  /** As in usage: `<cert>`, `[command...]`. */
  usage: string;
  name: string;
  description: string;
  required: boolean;
  variadic: boolean;
  choices: readonly string[] | undefined;
  listed: Listed | undefined;
  files: boolean;
  /** A path of the program's commands (`help pki issue`); at first, also these topics. */
  commandPath: { topics: readonly string[] } | undefined;
}

interface CommandSpec {
  /** Names from the program down: ['sark-fed', 'pki', 'issue']. */
  path: string[];
  name: string;
  aliases: string[];
  description: string;
  subcommands: CommandSpec[];
  /** The command's own options. */
  own: OptionSpec[];
  /** The program's options, which commander accepts after any subcommand too. */
  global: OptionSpec[];
  arguments: ArgumentSpec[];
}

function describeCommand(
  command: Command,
  parentPath: string[],
  programOptions: OptionSpec[],
): CommandSpec {
  const help = command.createHelp();
  const path = [...parentPath, command.name()];
  const own = help.visibleOptions(command).map(describeOption);
  const isRoot = parentPath.length === 0;
  return {
    path,
    name: command.name(),
    aliases: command.aliases(),
    description: firstLine(command.summary() || command.description()),
    subcommands: help
      .visibleCommands(command)
      .map((child) => describeCommand(child, path, isRoot ? own : programOptions)),
    own,
    global: isRoot ? [] : programOptions.filter((option) => !clashes(option, own)),
    arguments: command.registeredArguments.map(describeArgument),
  };
}

/**
 * Value names (`--state <path>`, `<cert>`) that name a file or a folder. Any other value without
 * choices (a URL, a number, a duration, a node ID) is free text: the scripts offer nothing for
 * it rather than the file names of the current folder.
 */
const FILE_VALUE_NAMES = new Set([
  'path',
  'file',
  'dir',
  'pem',
  'cert',
  'crl',
  'ca.pem',
  'nodes.json',
]);

function isFileValue(valueName: string): boolean {
  return FILE_VALUE_NAMES.has(valueName) || valueName.includes('@file');
}

function listedOf(target: Option | Argument): Listed | undefined {
  const values = completionValues(target);
  return values?.kind === 'listed'
    ? { command: values.command, copiedOptions: values.copiedOptions }
    : undefined;
}

function describeOption(option: Option): OptionSpec {
  const values = completionValues(option);
  // The value name as help shows it: `<host[:port]>` is "host[:port]", `[value]` is "value".
  const valueName =
    /<(.*)>|\[(.*)\]/
      .exec(option.flags)
      ?.slice(1)
      .find((name) => name !== undefined) ?? 'value';
  return {
    flags: [option.short, option.long].filter((flag): flag is string => flag !== undefined),
    description: firstLine(option.description),
    takesValue: option.required || option.optional,
    // commander sets both for `<host[:port]>`: the angle brackets make the value required.
    optionalValue: option.optional && !option.required,
    valueName: valueName.replace(/\.\.\.$/, ''),
    choices: option.argChoices ?? (values?.kind === 'words' ? values.words : undefined),
    list: values?.kind === 'words',
    listed: listedOf(option),
    files: isFileValue(valueName),
  };
}

function describeArgument(argument: Argument): ArgumentSpec {
  const name = argument.name();
  const inner = `${name}${argument.variadic ? '...' : ''}`;
  const values = completionValues(argument);
  return {
    usage: argument.required ? `<${inner}>` : `[${inner}]`,
    name,
    description: firstLine(argument.description),
    required: argument.required,
    variadic: argument.variadic,
    choices: argument.argChoices ?? (values?.kind === 'words' ? values.words : undefined),
    listed: listedOf(argument),
    files: isFileValue(name),
    commandPath: values?.kind === 'command-path' ? { topics: values.topics } : undefined,
  };
}

/** Whether the option shares a flag with one of the others (the command's own option wins). */
function clashes(option: OptionSpec, others: readonly OptionSpec[]): boolean {
  return option.flags.some((flag) => others.some((other) => other.flags.includes(flag)));
}

/** The options a command accepts: its own, then the program's. */
function allOptions(command: CommandSpec): OptionSpec[] {
  return [...command.own, ...command.global];
}

function allCommands(command: CommandSpec): CommandSpec[] {
  return [command, ...command.subcommands.flatMap(allCommands)];
}

function firstLine(text: string | undefined): string {
  return (text ?? '').split('\n')[0]?.trim() ?? '';
}

function header(root: CommandSpec, shell: Shell, extra: string): string[] {
  const name = root.name;
  const install = [...installExamples(name)[shell].map(([, line]) => line), extra];
  return [
    `# ${shell} completion for ${name}, generated by \`${name} completion ${shell}\`: do not edit.`,
    `# Regenerate it after changing the commands; install it with:`,
    ...install.map((line) => `#   ${line}`),
  ];
}

// ---------------------------------------------------------------------------------------------
// bash

/** bash: a single-quoted word. */
function bq(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

function bashScript(root: CommandSpec): string {
  const fn = `_${root.name.replace(/[^A-Za-z0-9_]/g, '_')}`;
  const commands = allCommands(root);
  const key = (command: CommandSpec) => command.path.join(' ');
  const lines: string[] = [
    ...header(root, 'bash', `echo 'source <(${root.name} completion bash)' >> ~/.bashrc`),
    '',
    `# ${fn}_command PATH: sets commands (subcommands and aliases), options, value_options (the`,
    `# options that take a value) and arguments of a command path such as "${root.name} pki";`,
    '# path_argument to the position of an argument that names a command path, path_topics to',
    '# the other words it takes.',
    `${fn}_command() {`,
    `  commands='' options='' value_options='' arguments='' path_argument='' path_topics=''`,
    '  case $1 in',
  ];
  for (const command of commands) {
    const options = allOptions(command);
    lines.push(`    ${bq(key(command))})`);
    const names = command.subcommands.flatMap((sub) => [sub.name, ...sub.aliases]);
    if (names.length > 0) lines.push(`      commands=${bq(names.join(' '))}`);
    if (options.length > 0)
      lines.push(`      options=${bq(options.flatMap((option) => option.flags).join(' '))}`);
    const valueFlags = options.filter((option) => option.takesValue).flatMap((o) => o.flags);
    if (valueFlags.length > 0) lines.push(`      value_options=${bq(valueFlags.join(' '))}`);
    if (command.subcommands.length === 0 && command.arguments.length > 0) {
      lines.push(`      arguments=${bq(command.arguments.map((a) => a.usage).join(' '))}`);
      const pathIndex = command.arguments.findIndex((argument) => argument.commandPath);
      const topics = command.arguments[pathIndex]?.commandPath?.topics ?? [];
      if (pathIndex >= 0)
        lines.push(`      path_argument=${pathIndex} path_topics=${bq(topics.join(' '))}`);
    }
    lines.push('      ;;');
  }
  lines.push('  esac', '}', '');

  lines.push(
    `# ${fn}_subcommand PATH WORD: sets next to the path of the subcommand WORD names (or fails).`,
    `${fn}_subcommand() {`,
    '  case "$1 $2" in',
  );
  for (const command of commands) {
    for (const sub of command.subcommands) {
      const patterns = [sub.name, ...sub.aliases].map((name) => bq(`${key(command)} ${name}`));
      lines.push(`    ${patterns.join(' | ')}) next=${bq(key(sub))} ;;`);
    }
  }
  lines.push('    *) return 1 ;;', '  esac', '}', '');

  lines.push(
    `# ${fn}_values 'PATH OPTION' or 'PATH <argument>': sets values to what it takes: its`,
    '# choices, the words the program lists (such as node IDs), or nothing for free text (a URL,',
    '# a number), and list=1 for a comma-separated list of its choices; fails for a file name.',
    `${fn}_values() {`,
    '  case $1 in',
  );
  for (const command of commands) {
    const freeText: string[] = [];
    const values = (patterns: string[], spec: OptionSpec | ArgumentSpec) => {
      if (spec.choices) {
        const list = 'list' in spec && spec.list ? ' list=1' : '';
        lines.push(`    ${patterns.join(' | ')}) values=${bq(spec.choices.join(' '))}${list} ;;`);
      } else if (spec.listed) {
        lines.push(`    ${patterns.join(' | ')}) values=$(${bashListedCall(fn, spec.listed)}) ;;`);
      } else if (!spec.files) {
        freeText.push(...patterns);
      }
    };
    for (const option of allOptions(command)) {
      if (option.takesValue)
        values(
          option.flags.map((flag) => bq(`${key(command)} ${flag}`)),
          option,
        );
    }
    if (command.subcommands.length === 0) {
      for (const argument of command.arguments) {
        if (!argument.commandPath) values([bq(`${key(command)} ${argument.usage}`)], argument);
      }
    }
    if (freeText.length > 0) lines.push(`    ${freeText.join(' | ')}) values='' ;;`);
  }
  lines.push('    *) return 1 ;;', '  esac', '}', '');
  if (commands.some((command) => anyListed(command))) lines.push(...bashListedFunction(fn));

  lines.push(
    `# ${fn}_value KEY: completes what an option or argument takes, or else file names.`,
    `${fn}_value() {`,
    '  local values list=0',
    `  if ${fn}_values "$1"; then`,
    '    # A comma-separated list (serve --announce mdns,consul): complete its last item with',
    '    # what the list does not hold yet.',
    '    if ((list)) && [[ $cur == *,* ]]; then',
    '      local item kept=\'\' listed=",${cur%,*},"',
    '      prefix+=${cur%,*}, cur=${cur##*,}',
    '      for item in $values; do [[ $listed == *",$item,"* ]] || kept+=" $item"; done',
    '      values=$kept',
    '    fi',
    '    mapfile -t COMPREPLY < <(compgen -P "$prefix" -W "$values" -- "$cur")',
    '  else',
    '    compopt -o filenames 2>/dev/null',
    '    mapfile -t COMPREPLY < <(compgen -P "$prefix" -f -- "$cur")',
    '  fi',
    '}',
    '',
    `# ${fn}_path TARGET FIRST: completes the subcommands of the command path TARGET, and the`,
    '# topics when FIRST is 1 (nothing once a word named no command).',
    `${fn}_path() {`,
    '  [[ -n $1 ]] || return 0',
    '  local values',
    `  values=$(${fn}_command "$1" && printf '%s' "$commands")`,
    '  (($2)) && values+=" $path_topics"',
    '  mapfile -t COMPREPLY < <(compgen -W "$values" -- "$cur")',
    '}',
    '',
    `${fn}() {`,
    '  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}',
    `  local path=${bq(root.name)} next word i skip=0 dashdash=0 index=0 option='' prefix=''`,
    `  local commands options value_options arguments argument path_argument path_topics`,
    `  local target=${bq(root.name)}`,
    '  local -a list',
    '  COMPREPLY=()',
    '',
    '  # The command path: subcommand names before the cursor. Option values are skipped, other',
    '  # words are counted as arguments.',
    `  ${fn}_command "$path"`,
    '  for ((i = 1; i < COMP_CWORD; i++)); do',
    '    word=${COMP_WORDS[i]}',
    '    if ((skip)); then',
    '      skip=0',
    '    elif ((dashdash)); then',
    '      index=$((index + 1))',
    '    elif [[ $word == -- ]]; then',
    '      dashdash=1',
    '    elif [[ $word == = ]]; then',
    '      skip=1 # bash splits --option=value at the "=": skip the value',
    '    elif [[ $word == -* ]]; then',
    '      if [[ " $value_options " == *" $word "* && ${COMP_WORDS[i+1]} != = ]]; then',
    '        skip=1',
    '      fi',
    `    elif ${fn}_subcommand "$path" "$word"; then`,
    '      path=$next',
    `      ${fn}_command "$path"`,
    '    else',
    '      # An argument naming a command path: follow it from the top of the program.',
    '      if [[ -n $path_argument && -n $target ]] && ((index >= path_argument)); then',
    `        ${fn}_subcommand "$target" "$word" && target=$next || target=''`,
    '      fi',
    '      index=$((index + 1))',
    '    fi',
    '  done',
    '',
    '  # The value of an option: --option value, --option=value, or "--option" "=" "value".',
    '  if [[ $prev == = && ${COMP_WORDS[COMP_CWORD-2]} == -* ]]; then',
    '    option=${COMP_WORDS[COMP_CWORD-2]}',
    '  elif [[ $cur == = && $prev == -* ]]; then',
    "    option=$prev cur=''",
    '  elif [[ $cur == -*=* ]] && ((!dashdash)); then',
    '    option=${cur%%=*} prefix=${cur%%=*}= cur=${cur#*=}',
    '  elif ((skip)); then',
    '    option=$prev',
    '  fi',
    '  if [[ -n $option ]]; then',
    `    [[ " $value_options " == *" $option "* ]] && ${fn}_value "$path $option"`,
    '    return 0',
    '  fi',
    '',
    '  if [[ $cur == -* ]] && ((!dashdash)); then',
    '    mapfile -t COMPREPLY < <(compgen -W "$options" -- "$cur")',
    '  elif [[ -n $commands ]]; then',
    '    mapfile -t COMPREPLY < <(compgen -W "$commands" -- "$cur")',
    '  else',
    '    # The argument at this position, or the last one when it takes many.',
    '    read -r -a list <<<"$arguments"',
    "    argument=''",
    '    if ((index < ${#list[@]})); then',
    '      argument=${list[index]}',
    '    elif ((${#list[@]} > 0)) && [[ ${list[${#list[@]}-1]} == *...? ]]; then',
    '      argument=${list[${#list[@]}-1]}',
    '    fi',
    '    if [[ -n $argument && -n $path_argument ]] && ((index >= path_argument)); then',
    `      ${fn}_path "$target" $((index == path_argument))`,
    '    elif [[ -n $argument ]]; then',
    `      ${fn}_value "$path $argument"`,
    '    elif ((!dashdash)); then',
    '      mapfile -t COMPREPLY < <(compgen -W "$options" -- "$cur")',
    '    fi',
    '  fi',
    '  return 0',
    '}',
    '',
    `complete -F ${fn} ${root.name}`,
  );
  return `${lines.join('\n')}\n`;
}

/** Whether an option or argument of the command takes words the program lists. */
function anyListed(command: CommandSpec): boolean {
  return [...allOptions(command), ...command.arguments].some((spec) => spec.listed);
}

function bashListedCall(fn: string, listed: Listed): string {
  return [`${fn}_listed`, bq(listed.copiedOptions.join(' ')), ...listed.command.map(bq)].join(' ');
}

/** The bash function that asks the program for a list (`nodes list`) when Tab is pressed. */
function bashListedFunction(fn: string): string[] {
  return [
    `# ${fn}_listed 'OPTIONS' COMMAND...: the first field of each line the program prints for`,
    '# COMMAND in a pipe, run with the options named in OPTIONS (such as --state) as they are on',
    '# the command line being completed; nothing when it fails (no state file yet).',
    `${fn}_listed() {`,
    '  local copy=" $1 " word value i',
    '  local -a copied',
    '  shift',
    '  for ((i = 1; i < COMP_CWORD; i++)); do',
    '    word=${COMP_WORDS[i]}',
    '    if [[ $word == --*=* && $copy == *" ${word%%=*} "* ]]; then',
    '      value=${word#*=} word=${word%%=*}',
    '    elif [[ $copy == *" $word "* ]]; then',
    '      # bash splits --state=x at the "=": "--state" "=" "x"',
    '      value=${COMP_WORDS[i+1]}',
    '      [[ $value == = ]] && value=${COMP_WORDS[i+2]}',
    '    else',
    '      continue',
    '    fi',
    '    [[ $value == "~/"* ]] && value=$HOME/${value:2}',
    '    copied+=("$word" "$value")',
    '  done',
    '  "${COMP_WORDS[0]}" "${copied[@]}" --no-color "$@" 2>/dev/null </dev/null | cut -f1',
    '}',
    '',
  ];
}

// ---------------------------------------------------------------------------------------------
// zsh

/** zsh: a single-quoted word. */
function zq(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Text inside an _arguments `[explanation]`. */
function zshExplanation(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\[/g, '\\[').replace(/\]/g, '\\]');
}

/** A message or an item in `_arguments` and `_describe`, where ":" separates fields. */
function zshField(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
}

/**
 * The action completing a value: `(choice ...)`, the words the program lists, file names, or
 * nothing for free text (a single space: _arguments then shows the message and offers nothing).
 */
function zshAction(root: CommandSpec, spec: OptionSpec | ArgumentSpec): string {
  // _sequence completes each item of a comma-separated list with the function after it.
  if (spec.choices && 'list' in spec && spec.list) {
    return `_sequence compadd - ${spec.choices.map(zq).join(' ')}`;
  }
  if (spec.choices) {
    return `(${spec.choices.map((choice) => choice.replace(/[\\\s()'":]/g, '\\$&')).join(' ')})`;
  }
  if (spec.listed) {
    const call = [
      zshListedFunction(root),
      zq(spec.listed.copiedOptions.join(' ')),
      ...spec.listed.command.map(zq),
    ];
    return `{${call.join(' ')}}`;
  }
  return spec.files ? '_files' : ' ';
}

function zshListedFunction(root: CommandSpec): string {
  return `${zshFunctionName(root)}_listed`;
}

/**
 * The zsh function that asks the program for a list (`nodes list`) when Tab is pressed. It reads
 * the whole line (LBUFFER): inside a subcommand, $words no longer holds the program's name or the
 * options before the subcommand.
 */
function zshListedLines(root: CommandSpec): string[] {
  return [
    '',
    `# ${zshListedFunction(root)} 'OPTIONS' COMMAND...: offers the first field of each line the program`,
    '# prints for COMMAND in a pipe, run with the options named in OPTIONS (such as --state) as they',
    '# are on the command line; nothing when it fails (no state file yet).',
    `${zshListedFunction(root)}() {`,
    '  local copy=" $1 " word value i',
    '  shift',
    '  local -a line copied items',
    '  line=(${(Q)${(z)LBUFFER}})',
    '  for ((i = 2; i <= ${#line}; i++)); do',
    '    word=${line[i]}',
    '    if [[ $word == --*=* && $copy == *" ${word%%=*} "* ]]; then',
    '      value=${word#*=} word=${word%%=*}',
    '    elif [[ $copy == *" $word "* ]]; then',
    '      value=${line[i+1]}',
    '    else',
    '      continue',
    '    fi',
    "    [[ $value == '~/'* ]] && value=$HOME/${value#'~/'}",
    '    copied+=($word $value)',
    '  done',
    '  items=(${${(f)"$(${line[1]} $copied --no-color "$@" 2>/dev/null </dev/null)"}%%$\'\\t\'*})',
    '  compadd -a items',
    '}',
  ];
}

/**
 * The _arguments specs of one option. commander cannot say which options may be repeated (a
 * custom parser such as `collect` can gather them), so options that take a value may be repeated
 * and flags may not.
 */
function zshOptionSpecs(root: CommandSpec, option: OptionSpec): string[] {
  const explanation = `[${zshExplanation(option.description)}]`;
  if (!option.takesValue) {
    const exclusions = option.flags.length > 1 ? `(${option.flags.join(' ')})` : '';
    return option.flags.map((flag) => zq(`${exclusions}${flag}${explanation}`));
  }
  const value = `${option.optionalValue ? '::' : ':'}${zshField(option.valueName)}:${zshAction(root, option)}`;
  return option.flags.map((flag) => {
    const form = flag.startsWith('--') ? `${flag}=` : `${flag}+`;
    return zq(`*${form}${explanation}${value}`);
  });
}

function zshArgumentSpecs(command: CommandSpec, root: CommandSpec): string[] {
  return command.arguments.map((argument, index) => {
    const message = zshField(argument.description || argument.name);
    const action = argument.commandPath
      ? [zshPathFunction(root), String(index), ...argument.commandPath.topics.map(zq)].join(' ')
      : zshAction(root, argument);
    if (argument.variadic) return zq(`*:${message}:${action}`);
    return zq(`${index + 1}:${argument.required ? '' : ':'}${message}:${action}`);
  });
}

function zshPathFunction(root: CommandSpec): string {
  return `${zshFunctionName(root)}_command_path`;
}

/**
 * The function completing an argument that names a command path (`help pki issue`): the
 * subcommands of the path its words name so far, and its topics for the first word.
 */
function zshPathLines(root: CommandSpec): string[] {
  const commands = allCommands(root);
  const key = (command: CommandSpec) => command.path.join(' ');
  const lines = [
    '',
    `# ${zshPathFunction(root)} N TOPIC...: completes an argument at position N (from 0) that names`,
    '# a command path: the subcommands of the path its words name so far, and the topics first.',
    `${zshPathFunction(root)}() {`,
    `  local position=$1 target=${zq(root.name)} word`,
    '  shift',
    '  local -a given names',
    '  # $words holds the words of the command whose argument this is, the command first.',
    '  for word in ${words[2,CURRENT-1]}; do',
    '    [[ $word == -* ]] || given+=($word)',
    '  done',
    '  given=(${given[position+1,-1]})',
    '  for word in $given; do',
    '    case "$target $word" in',
  ];
  for (const command of commands) {
    for (const sub of command.subcommands) {
      const patterns = [sub.name, ...sub.aliases].map((name) => zq(`${key(command)} ${name}`));
      lines.push(`      (${patterns.join('|')}) target=${zq(key(sub))} ;;`);
    }
  }
  lines.push('      (*) return 1 ;;', '    esac', '  done', '  case $target in');
  for (const command of commands) {
    if (command.subcommands.length === 0) continue;
    const names = command.subcommands.flatMap((sub) =>
      [sub.name, ...sub.aliases].map((name) => zq(`${zshField(name)}:${sub.description}`)),
    );
    lines.push(`    (${zq(key(command))}) names=(${names.join(' ')}) ;;`);
  }
  lines.push(
    '  esac',
    '  (( ${#given} == 0 )) && names+=("$@")',
    "  _describe -t commands 'command' names",
    '}',
  );
  return lines;
}

function zshFunctionName(command: CommandSpec): string {
  return `_${command.path.map((name) => name.replace(/[^A-Za-z0-9_-]/g, '_')).join('_')}`;
}

function zshScript(root: CommandSpec): string {
  const rootFunction = zshFunctionName(root);
  const lines: string[] = [
    `#compdef ${root.name}`,
    ...header(
      root,
      'zsh',
      `echo 'source <(${root.name} completion zsh)' >> ~/.zshrc  # after compinit`,
    ),
  ];
  for (const command of allCommands(root)) {
    const specs = allOptions(command).flatMap((option) => zshOptionSpecs(root, option));
    lines.push('', `# ${command.path.join(' ')}`, `${zshFunctionName(command)}() {`);
    if (command.subcommands.length === 0) {
      specs.push(...zshArgumentSpecs(command, root));
      lines.push(
        specs.length > 0
          ? `  _arguments -s -S \\\n${specs.map((spec) => `    ${spec}`).join(' \\\n')}`
          : '  _message "no more arguments"',
      );
      lines.push('}');
      continue;
    }
    specs.push(zq(': :->command'), zq('*:: :->argument'));
    lines.push(
      '  local curcontext=$curcontext state state_descr line',
      '  typeset -A opt_args',
      `  _arguments -C -s -S \\\n${specs.map((spec) => `    ${spec}`).join(' \\\n')}`,
      '  case $state in',
      '    (command)',
      '      local -a commands=(',
    );
    for (const sub of command.subcommands) {
      for (const name of [sub.name, ...sub.aliases])
        lines.push(`        ${zq(`${zshField(name)}:${sub.description}`)}`);
    }
    lines.push(
      '      )',
      `      _describe -t commands ${zq(`${command.path.join(' ')} command`)} commands`,
      '      ;;',
      '    (argument)',
      '      case $line[1] in',
    );
    for (const sub of command.subcommands) {
      const patterns = [sub.name, ...sub.aliases].map(zq).join('|');
      lines.push(`        (${patterns}) ${zshFunctionName(sub)} ;;`);
    }
    lines.push('      esac', '      ;;', '  esac', '}');
  }
  if (allCommands(root).some((command) => command.arguments.some((a) => a.commandPath))) {
    lines.push(...zshPathLines(root));
  }
  if (allCommands(root).some(anyListed)) lines.push(...zshListedLines(root));
  lines.push(
    '',
    '# Autoloaded from $fpath the file is the body of the completion function; sourced, it registers it.',
    `if [[ $funcstack[1] == ${rootFunction} ]]; then`,
    `  ${rootFunction} "$@"`,
    'else',
    `  compdef ${rootFunction} ${root.name}`,
    'fi',
  );
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// fish

/** fish: a single-quoted word. */
function fq(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** fish: a double-quoted word, for the command path inside a condition. */
function fdq(text: string): string {
  return `"${text.replace(/[\\"$]/g, '\\$&')}"`;
}

function fishOptionFlags(option: OptionSpec): string {
  return option.flags
    .map((flag) => (flag.startsWith('--') ? `-l ${flag.slice(2)}` : `-s ${flag.slice(1)}`))
    .join(' ');
}

function fishListedCall(fn: string, listed: Listed): string {
  return `(${[`${fn}_listed`, fdq(listed.copiedOptions.join(' ')), ...listed.command.map(fdq)].join(' ')})`;
}

function fishOption(fn: string, prefix: string, option: OptionSpec): string {
  const parts = [prefix, fishOptionFlags(option)];
  if (option.takesValue) {
    // -x: a value is required and no file names are offered; -r -F: a file name.
    if (option.choices && option.list) {
      parts.push(`-x -a ${fq(`(${[`${fn}_list_items`, ...option.choices.map(fdq)].join(' ')})`)}`);
    } else if (option.choices) parts.push(`-x -a ${fq(option.choices.join(' '))}`);
    else if (option.listed) parts.push(`-x -a ${fq(fishListedCall(fn, option.listed))}`);
    else parts.push(option.files ? '-r -F' : '-x');
  }
  if (option.description) parts.push(`-d ${fq(option.description)}`);
  return parts.join(' ');
}

/** The fish function that asks the program for a list (`nodes list`) when Tab is pressed. */
function fishListedLines(fn: string): string[] {
  return [
    `# ${fn}_listed 'OPTIONS' COMMAND...: the first field of each line the program prints for`,
    '# COMMAND in a pipe, run with the options named in OPTIONS (such as --state) as they are on',
    '# the command line; nothing when it fails (no state file yet).',
    `function ${fn}_listed`,
    '    set -l copy (string split -n " " -- $argv[1])',
    '    set -e argv[1]',
    '    set -l words (commandline -opc)',
    '    set -l copied',
    '    for i in (seq 2 (count $words))',
    '        set -l word $words[$i]',
    '        set -l value',
    "        if string match -q -- '--*=*' $word; and contains -- (string split -m 1 = -- $word)[1] $copy",
    '            set value (string split -m 1 = -- $word)[2]',
    '            set word (string split -m 1 = -- $word)[1]',
    '        else if contains -- $word $copy; and test $i -lt (count $words)',
    '            set value $words[(math $i + 1)]',
    '        else',
    '            continue',
    '        end',
    '        set -a copied $word (string replace -r \'^~/\' "$HOME/" -- $value)',
    '    end',
    '    $words[1] $copied --no-color $argv 2>/dev/null </dev/null | string split -f 1 \\t',
    'end',
    '',
  ];
}

/** The fish function completing the last item of a comma-separated list (`mdns,consul`). */
function fishListItemsLines(fn: string): string[] {
  return [
    `# ${fn}_list_items CHOICE...: the choices, after the items of the list already typed.`,
    `function ${fn}_list_items`,
    "    set -l typed (string replace -r '^--[^=]*=' '' -- (commandline -ct))",
    "    set -l listed (string match -r '^.*,' -- $typed); or set listed ''",
    '    for choice in $argv',
    "        contains -- $choice (string split , -- $listed); or printf '%s\\n' $listed$choice",
    '    end',
    'end',
    '',
  ];
}

function fishScript(root: CommandSpec): string {
  const fn = `__${root.name.replace(/[^A-Za-z0-9_]/g, '_')}`;
  const commands = allCommands(root);
  const key = (command: CommandSpec) => command.path.join(' ');
  const complete = `complete -c ${root.name}`;
  const lines: string[] = [
    ...header(root, 'fish', `${root.name} completion fish | source  # this shell only`),
    '',
    `# ${fn}_subcommand 'PATH WORD': prints the path of the subcommand WORD names, if it is one.`,
    `function ${fn}_subcommand`,
    '    switch $argv[1]',
  ];
  for (const command of commands) {
    for (const sub of command.subcommands) {
      const patterns = [sub.name, ...sub.aliases].map((name) => fq(`${key(command)} ${name}`));
      lines.push(`        case ${patterns.join(' ')}`, `            echo ${fq(key(sub))}`);
    }
  }
  lines.push('    end', 'end', '');

  if (commands.some((command) => command.arguments.some((argument) => argument.commandPath))) {
    lines.push(
      `# ${fn}_subcommands 'PATH': prints the subcommands of PATH, each with its description.`,
      `function ${fn}_subcommands`,
      '    switch $argv[1]',
    );
    for (const command of commands) {
      if (command.subcommands.length === 0) continue;
      lines.push(`        case ${fq(key(command))}`);
      for (const sub of command.subcommands) {
        for (const name of [sub.name, ...sub.aliases])
          lines.push(`            printf '%s\\t%s\\n' ${fq(name)} ${fq(sub.description)}`);
      }
    }
    lines.push(
      '    end',
      'end',
      '',
      `# ${fn}_command_path N TOPIC...: the candidates of an argument at position N that names a`,
      '# command path: the subcommands of the path its words name so far, and the topics first.',
      `function ${fn}_command_path`,
      `    set -l state (${fn}_state)`,
      '    set -l words $state[(math 3 + $argv[1])..-1]',
      `    set -l target ${fq(root.name)}`,
      '    for word in $words',
      `        set target (${fn}_subcommand "$target $word")`,
      '        test -n "$target"; or return 0',
      '    end',
      `    ${fn}_subcommands $target`,
      "    not set -q words[1]; and set -q argv[2]; and printf '%s\\n' $argv[2..-1]",
      'end',
      '',
    );
  }

  lines.push(
    `# ${fn}_takes_value 'PATH OPTION': succeeds when the option takes a value there.`,
    `function ${fn}_takes_value`,
    '    switch $argv[1]',
  );
  for (const command of commands) {
    const flags = allOptions(command)
      .filter((option) => option.takesValue)
      .flatMap((option) => option.flags);
    if (flags.length === 0) continue;
    lines.push(
      `        case ${flags.map((flag) => fq(`${key(command)} ${flag}`)).join(' ')}`,
      '            return 0',
    );
  }
  lines.push('    end', '    return 1', 'end', '');

  lines.push(
    '# Prints the command path of the command line (subcommand names before the cursor, option',
    '# values skipped), then how many arguments follow it, then those arguments.',
    `function ${fn}_state`,
    `    set -l path ${fq(root.name)}`,
    '    set -l arguments 0',
    '    set -l given',
    '    set -l skip 0',
    '    set -l dashdash 0',
    '    set -l words (commandline -opc)',
    '    set -e words[1]',
    '    for word in $words',
    '        if test $skip = 1',
    '            set skip 0',
    '        else if test $dashdash = 1',
    '            set arguments (math $arguments + 1)',
    '            set -a given $word',
    '        else if test "$word" = \'--\'',
    '            set dashdash 1',
    "        else if string match -q -- '-*=*' $word",
    '            continue',
    "        else if string match -q -- '-*' $word",
    `            ${fn}_takes_value "$path $word"; and set skip 1`,
    '        else',
    `            set -l next (${fn}_subcommand "$path $word")`,
    '            if test -n "$next"',
    '                set path $next',
    '            else',
    '                set arguments (math $arguments + 1)',
    '                set -a given $word',
    '            end',
    '        end',
    '    end',
    '    echo $path',
    '    echo $arguments',
    "    set -q given[1]; and printf '%s\\n' $given",
    'end',
    '',
    '# Succeeds when the command line is at the command PATH.',
    `function ${fn}_using`,
    `    set -l state (${fn}_state)`,
    '    test "$state[1]" = "$argv[1]"',
    'end',
    '',
    '# Succeeds when the word being completed is argument N (from 0; "N+": N or later) of PATH.',
    `function ${fn}_argument`,
    `    set -l state (${fn}_state)`,
    '    test "$state[1]" = "$argv[1]"; or return 1',
    "    if string match -q -- '*+' $argv[2]",
    "        test $state[2] -ge (string trim -r -c '+' -- $argv[2])",
    '    else',
    '        test $state[2] -eq $argv[2]',
    '    end',
    'end',
    '',
    ...(commands.some(anyListed) ? fishListedLines(fn) : []),
    ...(commands.some((command) => allOptions(command).some((option) => option.list))
      ? fishListItemsLines(fn)
      : []),
    '# No file names unless an option or argument asks for them.',
    `${complete} -f`,
    '',
    '# Options of the program, accepted after any command.',
  );
  for (const option of root.own) lines.push(fishOption(fn, complete, option));

  for (const command of commands) {
    const condition = `-n ${fq(`${fn}_using ${fdq(key(command))}`)}`;
    const block: string[] = [];
    for (const sub of command.subcommands) {
      for (const name of [sub.name, ...sub.aliases]) {
        const description = sub.description ? ` -d ${fq(sub.description)}` : '';
        block.push(`${complete} ${condition} -a ${fq(name)}${description}`);
      }
    }
    if (command !== root) {
      // Options that repeat one of the program's (such as --help) are already there.
      for (const option of command.own) {
        const repeated = root.own.some((global) =>
          option.flags.every((flag) => global.flags.includes(flag)),
        );
        if (!repeated) block.push(fishOption(fn, `${complete} ${condition}`, option));
      }
    }
    if (command.subcommands.length === 0) {
      command.arguments.forEach((argument, index) => {
        const position = argument.variadic ? `${index}+` : `${index}`;
        const at = `-n ${fq(`${fn}_argument ${fdq(key(command))} ${position}`)}`;
        const what = argument.commandPath
          ? `-a ${fq(`(${[`${fn}_command_path`, String(index), ...argument.commandPath.topics.map(fdq)].join(' ')})`)}`
          : argument.choices
            ? `-a ${fq(argument.choices.join(' '))}`
            : argument.listed
              ? `-a ${fq(fishListedCall(fn, argument.listed))}`
              : argument.files
                ? '-F'
                : undefined;
        // Free text (a resource ID): nothing to offer, and no file names either (-f above).
        if (what === undefined) return;
        const description = argument.description ? ` -d ${fq(argument.description)}` : '';
        block.push(`${complete} ${at} ${what}${description}`);
      });
    }
    if (block.length > 0) lines.push('', `# ${key(command)}`, ...block);
  }
  return `${lines.join('\n')}\n`;
}
