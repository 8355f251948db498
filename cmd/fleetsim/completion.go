package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

func completionCommand() *command {
	return &command{
		name:    "completion",
		args:    "bash|zsh|fish",
		summary: "print a shell completion script",
		help: `Prints a script that completes fleetsim's commands, subcommands, flags and
embedded scenario names in bash, zsh or fish. Load it in the current shell,
or install it where your shell looks for completions.`,
		examples: []string{
			"source <(fleetsim completion bash)",
			"fleetsim completion zsh > \"${fpath[1]}/_fleetsim\"",
			"fleetsim completion fish > ~/.config/fish/completions/fleetsim.fish",
		},
		setup: func(f *flagSet) action {
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) != 1 {
					return usagef(f.name, "want one shell: bash, zsh or fish")
				}
				tree := completionTree(commands())
				switch args[0] {
				case "bash":
					writeBashCompletion(a.stdout, tree)
				case "zsh":
					io.WriteString(a.stdout, "#compdef fleetsim\n")
					io.WriteString(a.stdout, "autoload -U +X bashcompinit && bashcompinit\n")
					writeBashCompletion(a.stdout, tree)
				case "fish":
					writeFishCompletion(a.stdout, tree)
				default:
					return usagef(f.name, "unknown shell %q: want bash, zsh or fish", args[0])
				}
				return nil
			}
		},
	}
}

// completionNode is one command path's completions: its subcommands, its
// flags, and whether its argument is a scenario.
type completionNode struct {
	path     string // "" for the top level, "jobs create"
	words    []string
	flags    []string
	scenario bool
}

// completionTree walks the command tree.
func completionTree(cmds []*command) []completionNode {
	var out []completionNode
	top := completionNode{}
	for _, c := range cmds {
		top.words = append(top.words, c.name)
	}
	top.words = append(top.words, "help")
	out = append(out, top)
	var walk func(prefix string, c *command)
	walk = func(prefix string, c *command) {
		n := completionNode{path: strings.TrimSpace(prefix + " " + c.name)}
		for _, s := range c.subs {
			n.words = append(n.words, s.name)
		}
		if c.setup != nil {
			f := newFlagSet(n.path)
			c.setup(f)
			f.fs.VisitAll(func(fl *flag.Flag) {
				if fl.Usage != "" { // aliases have none
					n.flags = append(n.flags, "--"+fl.Name)
				}
			})
			n.flags = append(n.flags, "--help")
		}
		n.scenario = c.args == "SCENARIO" || n.path == "scenarios show" || n.path == "scenarios validate"
		if n.path == "completion" {
			n.words = []string{"bash", "zsh", "fish"}
		}
		out = append(out, n)
		for _, s := range c.subs {
			walk(n.path, s)
		}
	}
	for _, c := range cmds {
		walk("", c)
	}
	return out
}

func writeBashCompletion(w io.Writer, tree []completionNode) {
	fmt.Fprintf(w, `# bash completion for fleetsim: source <(fleetsim completion bash)
_fleetsim() {
    local cur="${COMP_WORDS[COMP_CWORD]}" path="" w i
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${COMP_WORDS[i]}"
        [[ "$w" == -* ]] && continue
        case "${path:+$path }$w" in
%s) path="${path:+$path }$w" ;;
        esac
    done
    local words="" flags="" scen=""
    case "$path" in
`, bashPaths(tree))
	for _, n := range tree {
		fmt.Fprintf(w, "    %q) words=%q; flags=%q", n.path, strings.Join(n.words, " "), strings.Join(n.flags, " "))
		if n.scenario {
			fmt.Fprintf(w, "; scen=%q", strings.Join(scenarioNames(), " "))
		}
		fmt.Fprintln(w, " ;;")
	}
	fmt.Fprint(w, `    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$words $scen" -- "$cur"))
        [[ -n "$scen" ]] && COMPREPLY+=($(compgen -f -- "$cur"))
    fi
}
complete -o default -F _fleetsim fleetsim
`)
}

// bashPaths is the case pattern of every command path.
func bashPaths(tree []completionNode) string {
	var ps []string
	for _, n := range tree {
		if n.path != "" {
			ps = append(ps, fmt.Sprintf("%q", n.path))
		}
	}
	slices.Sort(ps)
	return "            " + strings.Join(ps, "|")
}

func writeFishCompletion(w io.Writer, tree []completionNode) {
	fmt.Fprintln(w, "# fish completion for fleetsim: fleetsim completion fish > ~/.config/fish/completions/fleetsim.fish")
	fmt.Fprintln(w, "function __fleetsim_path")
	fmt.Fprintln(w, "    set -l path")
	fmt.Fprintln(w, "    for w in (commandline -opc)[2..-1]")
	fmt.Fprintln(w, "        string match -q -- '-*' $w; and continue")
	fmt.Fprintln(w, "        set -l next (string join ' ' $path $w)")
	fmt.Fprintf(w, "        contains -- $next %s; and set path $path $w\n", fishList(tree))
	fmt.Fprintln(w, "    end")
	fmt.Fprintln(w, "    string join ' ' $path")
	fmt.Fprintln(w, "end")
	fmt.Fprintln(w, "complete -c fleetsim -f")
	for _, n := range tree {
		cond := fmt.Sprintf("test (__fleetsim_path) = %q", n.path)
		if len(n.words) > 0 {
			fmt.Fprintf(w, "complete -c fleetsim -n %q -a %q\n", cond, strings.Join(n.words, " "))
		}
		for _, fl := range n.flags {
			fmt.Fprintf(w, "complete -c fleetsim -n %q -l %s\n", cond, strings.TrimPrefix(fl, "--"))
		}
		if n.scenario {
			fmt.Fprintf(w, "complete -c fleetsim -n %q -F -a %q\n", cond, strings.Join(scenarioNames(), " "))
		}
	}
}

func fishList(tree []completionNode) string {
	var ps []string
	for _, n := range tree {
		if n.path != "" {
			ps = append(ps, fmt.Sprintf("%q", n.path))
		}
	}
	return strings.Join(ps, " ")
}
