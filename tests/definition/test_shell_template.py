"""`{{ }}` in shell commands becomes an environment variable reference: values never become code."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tempeh_tui.definition.expressions import ExpressionError
from tempeh_tui.definition.shell_template import Quoting, ShellTemplate, parse_shell_template
from tests.definition.support import assert_problem, load, the_problem

HOSTILE = "$(touch PWNED); `touch PWNED2`; rm -rf x"


def run_bash(command: str, env: dict[str, str], cwd: Path) -> str:
    """What bash prints running `command` with `env` added, in `cwd`."""
    done = subprocess.run(
        ["bash", "-c", command],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    return done.stdout


def test_an_unquoted_expression_becomes_a_double_quoted_reference() -> None:
    command, env = parse_shell_template("deploy {{ params.version }} now").render(["1.4.2"])
    assert command == 'deploy "${TEMPEH_X1}" now'
    assert env == {"TEMPEH_X1": "1.4.2"}


def test_an_expression_inside_double_quotes_becomes_a_bare_reference() -> None:
    command, env = parse_shell_template('echo "version {{ params.version }}!"').render(["1"])
    assert command == 'echo "version ${TEMPEH_X1}!"'
    assert env == {"TEMPEH_X1": "1"}


def test_each_expression_gets_its_own_variable_in_order() -> None:
    template = parse_shell_template('cp {{ a }} "{{ b }}" {{ a }}')
    assert template.expressions == ("a", "b", "a")
    command, env = template.render(["1", "2", "3"])
    assert command == 'cp "${TEMPEH_X1}" "${TEMPEH_X2}" "${TEMPEH_X3}"'
    assert env == {"TEMPEH_X1": "1", "TEMPEH_X2": "2", "TEMPEH_X3": "3"}


@pytest.mark.parametrize(
    ("command", "quoting"),
    [
        ("echo {{ x }}", Quoting.NONE),
        ('echo "{{ x }}"', Quoting.DOUBLE),
        ('echo "it\'s {{ x }}"', Quoting.DOUBLE),
        ("echo 'a' {{ x }} 'b'", Quoting.NONE),
        ("echo \\'{{ x }}", Quoting.NONE),
        ('echo "a $(echo {{ x }}) b"', Quoting.NONE),
        ("echo `echo {{ x }}`", Quoting.NONE),
        ("cat <<EOF\n{{ x }}\nEOF\n", Quoting.HEREDOC),
        ("cat <<EOF\nEOF\necho {{ x }}", Quoting.NONE),
    ],
)
def test_the_quoting_at_each_expression_is_recognised(command: str, quoting: Quoting) -> None:
    assert parse_shell_template(command).quoting == (quoting,)


@pytest.mark.parametrize(
    ("command", "where"),
    [
        ("echo '{{ x }}'", "inside single quotes"),
        ("echo 'a' 'b {{ x }}'", "inside single quotes"),
        ("echo \"$(echo '{{ x }}')\"", "inside single quotes"),
        ("echo $'{{ x }}'", "inside $'...' quotes"),
        ("cat <<'EOF'\n{{ x }}\nEOF\n", "inside a quoted heredoc"),
        ('cat <<"EOF"\n{{ x }}\nEOF\n', "inside a quoted heredoc"),
        ("cat <<\\EOF\n{{ x }}\nEOF\n", "inside a quoted heredoc"),
        ("cat <<-'END'\n\t{{ x }}\n\tEND\n", "inside a quoted heredoc"),
    ],
)
def test_an_expression_the_shell_would_not_expand_is_refused(command: str, where: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_shell_template(command)
    message = str(caught.value)
    assert "'{{ x }}'" in message
    assert where in message
    assert "use double quotes or no quotes" in message


def test_a_value_with_a_nul_byte_cannot_reach_a_command() -> None:
    template = parse_shell_template("echo {{ x }}")
    with pytest.raises(ExpressionError, match="NUL byte"):
        template.render(["a\0b"])


def test_an_unclosed_expression_in_a_command_is_refused() -> None:
    with pytest.raises(ExpressionError, match="unclosed or unsupported '\\{\\{'"):
        parse_shell_template("echo {{ x")


def test_statements_are_not_allowed_in_a_command() -> None:
    with pytest.raises(ExpressionError, match="only \\{\\{ expression \\}\\} is allowed"):
        parse_shell_template("{% for x in y %}echo{% endfor %}")


# --- real bash: a value is data, whatever the quotes ----------------------------------------


@pytest.mark.parametrize(
    ("command", "printed"),
    [
        ("echo {{ x }}", f"{HOSTILE}\n"),
        ('echo "{{ x }}"', f"{HOSTILE}\n"),
        ('echo "value: {{ x }}."', f"value: {HOSTILE}.\n"),
        ('echo "$(echo {{ x }})"', f"{HOSTILE}\n"),
        ("echo `echo {{ x }}`", f"{HOSTILE}\n"),
        ("cat <<EOF\n{{ x }}\nEOF", f"{HOSTILE}\n"),
    ],
)
def test_a_hostile_value_is_printed_literally_and_runs_nothing(
    tmp_path: Path, command: str, printed: str
) -> None:
    rendered, env = parse_shell_template(command).render([HOSTILE])
    assert HOSTILE not in rendered
    assert run_bash(rendered, env, tmp_path) == printed
    assert list(tmp_path.iterdir()) == []  # no PWNED, no PWNED2


def test_a_value_with_quotes_and_newlines_survives_unchanged(tmp_path: Path) -> None:
    value = 'it\'s "quoted"\nsecond line with $HOME and \\ and *'
    rendered, env = parse_shell_template('printf %s {{ x }}; printf %s "|{{ x }}|"').render(
        [value, value]
    )
    assert run_bash(rendered, env, tmp_path) == f"{value}|{value}|"


def test_a_value_with_spaces_stays_one_argument(tmp_path: Path) -> None:
    rendered, env = parse_shell_template("printf '<%s>' {{ x }}").render(["a b  c"])
    assert run_bash(rendered, env, tmp_path) == "<a b  c>"


def test_a_hostile_value_in_an_arithmetic_context_runs_nothing(tmp_path: Path) -> None:
    try:
        rendered, env = parse_shell_template("echo $(( 1 + {{ x }} ))").render(
            ["a[$(touch PWNED)]"]
        )
    except ExpressionError:
        return  # refusing the template is a fine answer too
    subprocess.run(["bash", "-c", rendered], env={**os.environ, **env}, cwd=tmp_path, check=False)
    assert not (tmp_path / "PWNED").exists()


# --- in a workflow --------------------------------------------------------------------------


def test_braces_are_fine_in_double_quotes_unquoted_and_in_an_unquoted_heredoc() -> None:
    workflow = load(
        """
        name: shop
        params: {version: "1.4.2"}
        steps:
          - name: build
            run: |
              echo "building {{ params.version }}" {{ params.version }}
              cat > notes.txt <<EOF
              version {{ params.version }}
              EOF
            verify: test -f "out/{{ params.version }}.tar"
            check: ls out/{{ params.version }}
            rollback: rm -f "out/{{ params.version }}.tar"
        """
    )
    assert set(workflow.steps[0].shell_commands()) == {"run", "verify", "check", "rollback.run"}


@pytest.mark.parametrize(
    ("key", "label", "command", "where"),
    [
        ("verify", "verify", "test '{{ params.v }}' = x", "inside single quotes"),
        ("check", "check", "grep -q $'{{ params.v }}' out.txt", "inside $'...' quotes"),
        ("rollback", "rollback.run", "rm '{{ params.v }}'", "inside single quotes"),
    ],
)
def test_every_shell_command_of_a_step_is_checked(
    key: str, label: str, command: str, where: str
) -> None:
    problem = the_problem(
        f"""
        name: shop
        params: {{v: "1"}}
        steps:
          - name: build
            run: make
            {key}: {command}
        """
    )
    assert_problem(problem, 6, 5 + len(key) + 2, f"step 'build': {label}", where)


@pytest.mark.parametrize(
    ("command", "context"),
    [
        ("(( {{ x }} > 1 ))", "(( ))"),
        ('[[ "{{ x }}" -eq 1 ]]', "[[ ]] with an arithmetic comparison"),
        ("let y={{ x }}+1", "let"),
        ("echo ${arr[{{ x }}]}", "an array subscript"),
        ("arr=([{{ x }}]=1)", "an array subscript"),
        ("declare -a arr=([0]=a [{{ x }}]=1)", "an array subscript"),
        ('v=abcdef; echo "${v:{{ x }}}"', "a substring offset"),
        ('echo "${v:0:{{ x }}}"', "a substring offset"),
        ("echo $[ {{ x }} ]", "$[ ]"),
        ("f() { local -i n={{ x }}; }", "an integer declaration"),
        ("typeset -i n={{ x }}", "an integer declaration"),
        ('[ -v "{{ x }}" ]', "the name after -v"),
        ("[[ -v {{ x }} ]]", "the name after -v"),
        ('test -v "x{{ x }}"', "the name after -v"),
        ('printf -v "{{ x }}" %s 1', "the name after printf -v"),
        ("unset {{ x }}", "a variable name"),
        ("read {{ x }} < /dev/null", "a variable name"),
        ('declare "{{ x }}=1"', "a variable name"),
        ("declare -n ref={{ x }}", "a nameref"),
        ('eval "deploy {{ x }}"', "the text of an eval"),
        ('bash -c "deploy {{ x }}"', "the script of a sh -c"),
        ('command eval "deploy {{ x }}"', "the text of an eval"),
        ('trap "echo {{ x }}" EXIT', "the text of a trap"),
        ('bash <<< "deploy {{ x }}"', "a script a shell reads from a here-string"),
        ('declare -a arr="{{ x }}"', "an array declaration"),
        ('echo "{{ x }}" | bash', "a script piped into a shell"),
        ('echo "{{ x }}" | sudo -E sh -s', "a script piped into a shell"),
        ('source <(echo "{{ x }}")', "a script a shell reads from a process substitution"),
        ("sh -ec 'x'; sh -c deploy-{{ x }}", "the script of a sh -c"),
        # a shell by its path, behind a command that runs another, or over a line's end
        ('echo "{{ x }}" | /bin/bash', "a script piped into a shell"),
        ('echo "{{ x }}" | env sh', "a script piped into a shell"),
        ('echo "{{ x }}" | command bash', "a script piped into a shell"),
        ('echo "{{ x }}" | exec bash', "a script piped into a shell"),
        ('echo "{{ x }}" | nice bash', "a script piped into a shell"),
        ('echo "{{ x }}" | timeout 5 bash', "a script piped into a shell"),
        ('echo "{{ x }}" | time bash', "a script piped into a shell"),
        ('echo "{{ x }}" | sudo -u deploy bash', "a script piped into a shell"),
        ("printf '%s' \"{{ x }}\" |& bash", "a script piped into a shell"),
        ('echo "{{ x }}" |\n  bash', "a script piped into a shell"),
        ('echo "{{ x }}" \\\n  | bash', "a script piped into a shell"),
        ('echo "{{ x }}" | python3', "a script piped into a shell"),
        ('echo "{{ x }}" | ssh deploy@host', "a script piped into a shell"),
        ('bash < <(echo "{{ x }}")', "a script a shell reads from a process substitution"),
        ('. /dev/stdin <<< "{{ x }}"', "a script a shell reads from a here-string"),
        ("bash <<EOS\necho {{ x }}\nEOS", "a heredoc that a shell reads as its script"),
        ("cat <<EOS | sudo sh\necho {{ x }}\nEOS", "a heredoc that a shell reads as its script"),
        ("ssh host <<EOS\necho {{ x }}\nEOS", "a heredoc that a shell reads as its script"),
        ('cd /srv; bash -s <<E\necho "{{ x }}"\nE', "a heredoc that a shell reads as its script"),
    ],
)
def test_braces_where_bash_evaluates_arithmetic_are_refused(command: str, context: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(context)):
        parse_shell_template(command)


@pytest.mark.parametrize(
    "command",
    [
        '[[ "{{ x }}" == prod ]]',
        'if [ "{{ x }}" -eq 1 ]; then echo; fi',
        "echo {{ x }} $((1+2))",
        'grep -v "{{ x }}" notes.txt',
        "export RELEASE={{ x }}",
        'local tag="{{ x }}"',
        'echo "${tag:-{{ x }}}"',
        'echo "${tag#{{ x }}}"',
        "printf -v line %s {{ x }}",
        'read -r n <<< "{{ x }}"',
        'grep -c x <<< "{{ x }}"',
        "trap cleanup EXIT; echo {{ x }}",
        "echo {{ x }} | sh ./deploy.sh",
        "echo {{ x }} | sha256sum",
        'echo "x[{{ x }}]"',
        "bash -c 'deploy \"$1\"' _ {{ x }}",
        'echo "{{ x }}" | grep bash',
        'echo "{{ x }}" | bash -c "cat > out"',
        'echo "{{ x }}" | python3 check.py',
        'echo "{{ x }}" | ssh host "cat > /tmp/x"',
        'echo "{{ x }}" > bash.log; bash deploy.sh',
        "cat <<EOF > app.conf\nversion={{ x }}\nEOF",
        "bash -s -- {{ x }} <<'EOF'\necho \"$1\"\nEOF",
    ],
)
def test_braces_next_to_arithmetic_but_not_in_it_are_fine(command: str) -> None:
    assert parse_shell_template(command).expressions == ("x",)


HOSTILE_PLACES = [  # places the validator cannot see: no template inside the dangerous part
    "n={{ x }}; echo $((n))",
    'r={{ x }}; echo "${!r}"',
    'v={{ x }}; [ -v "$v" ] || true',
]


def assert_it_would_run(template: ShellTemplate, value: str, cwd: Path) -> None:
    """`value` handed to `template`'s command as it was, unchecked, runs `touch PWNED`."""
    rendered, env = template.render(["0"])
    subprocess.run(
        ["bash", "-c", rendered],
        env={**os.environ, **dict.fromkeys(env, value)},
        cwd=cwd,
        capture_output=True,
        check=False,
    )
    assert (cwd / "PWNED").exists()


@pytest.mark.parametrize("command", HOSTILE_PLACES)
@pytest.mark.parametrize("value", ["a[$(touch PWNED)]", "a[`touch PWNED`]"])
def test_a_value_bash_could_expand_as_code_never_reaches_a_shell(
    tmp_path: Path, command: str, value: str
) -> None:
    template = parse_shell_template(command)
    with pytest.raises(ExpressionError, match=r"holds a '\$' or '`' in an array subscript"):
        template.render([value])
    assert_it_would_run(template, value, tmp_path)  # what the refusal prevents


@pytest.mark.parametrize(
    "value",
    [
        "[::1]:8080",
        "release [candidate]",
        "cost $5",
        "a[0]",
        "^release-[0-9]+$",
        "[x]$y",
        "^[^$]*$",
        "price [about $5]",
        '{"allOf":[{"$ref":"#/defs/x"}]}',
    ],
)
def test_brackets_or_dollars_alone_are_ordinary_values(tmp_path: Path, value: str) -> None:
    rendered, env = parse_shell_template("printf %s {{ x }}").render([value])
    assert run_bash(rendered, env, tmp_path) == value


@pytest.mark.parametrize(
    "command", ["N={{ a }}{{ b }} ./calc.sh", 'N="{{ a }} {{ b }}"', 'M={{ a }}"("{{ b }}']
)
def test_values_that_meet_in_the_script_are_checked_together(command: str) -> None:
    with pytest.raises(ExpressionError, match=r"the values of '\{\{ a \}\} \{\{ b \}\}'"):
        parse_shell_template(command).render(["x[", "$(touch PWNED)]"])


@pytest.mark.parametrize(
    "value",
    [
        "a[\\]$(touch PWNED)]",
        'a["]"$(touch PWNED)]',
        "a[']'$(touch PWNED)]",
        "a['$(touch PWNED)']",
        "($(touch PWNED))",
    ],
)
def test_a_quoted_or_escaped_bracket_or_a_list_does_not_hide_code(
    tmp_path: Path, value: str
) -> None:
    template = parse_shell_template('n="{{ x }}"; (echo $((n))); (declare -a arr="$n")')
    with pytest.raises(ExpressionError, match="in an array subscript or a parenthesized list"):
        template.render([value])
    assert_it_would_run(template, value, tmp_path)  # what the refusal prevents


def test_code_in_nested_brackets_is_found() -> None:
    with pytest.raises(ExpressionError, match="in an array subscript"):
        parse_shell_template("echo {{ x }}").render(["a[x[1]+$(touch PWNED)]"])


@pytest.mark.parametrize(
    ("command", "value"),
    [
        ('N=a{{ x }}; (echo "n=$((N))")', "[$(touch PWNED)]"),  # the name is the script's
        ('V="{{ x }}"; (declare -a "$V")', "arr=($(touch PWNED))"),
    ],
)
def test_a_value_completed_into_code_by_the_script_is_refused(
    tmp_path: Path, command: str, value: str
) -> None:
    template = parse_shell_template(command)
    with pytest.raises(ExpressionError, match="in an array subscript or a parenthesized list"):
        template.render([value])
    assert_it_would_run(template, value, tmp_path)  # what the refusal prevents


@pytest.mark.parametrize(
    "command",
    [
        'echo "{{ x }}" | bash -x -s arg',
        'echo "{{ x }}" | sudo -k bash',
        'echo "{{ x }}" | python3 - arg',
        "bash /dev/stdin <<EOF\n{{ x }}\nEOF",
        ". /dev/stdin <<EOF\n{{ x }}\nEOF",
        "ssh host 'bash -s' <<EOF\n{{ x }}\nEOF",
        'ssh host "sudo bash" <<EOF\n{{ x }}\nEOF',
        "ssh host -p 2222 <<EOF\n{{ x }}\nEOF",
        "ssh -c aes128-ctr host <<EOF\n{{ x }}\nEOF",
        'echo "{{ x }}" | sudo -i',
        'echo "{{ x }}" | sudo -iu deploy',
        'echo "{{ x }}" | sudo su - app',
        'echo "{{ x }}" | su - app',
        "docker exec -i c sh <<EOF\n{{ x }}\nEOF",
        "kubectl exec -i pod -- sh <<EOF\n{{ x }}\nEOF",
        'echo "{{ x }}" | runuser -u app bash',
        'echo "{{ x }}" | flock /run/lock bash',
        "{ cat <<EOF; } | bash\n{{ x }}\nEOF",
        "(cat <<EOF) | bash\n{{ x }}\nEOF",
        'ssh host <<< "{{ x }}"',
        'python3 <<< "{{ x }}"',
        'echo "{{ x }}" | xargs -I{} sh -c "echo {}"',
        'echo "{{ x }}" | tee >(bash)',
        'ssh host "systemctl restart {{ x }}"',
        "ssh -p 22 host deploy {{ x }}",
        "ssh host bash -s -- {{ x }} <<'EOF'\necho \"$1\"\nEOF",
        # found by a second review
        'bash -e <<EOF\necho "{{ x }}"\nEOF',
        'echo "{{ x }}" | sh -xe',
        'echo "{{ x }}" | bash -o pipefail',
        'echo "{{ x }}" | "bash"',
        "bash<<EOF\necho {{ x }}\nEOF",
        'echo "{{ x }}" | xargs sh -c',
        'echo "{{ x }}" | bash 2>&1',
        'for h in web1; do ssh $h "echo {{ x }}"; done',
        'timeout 30 ssh web1 "echo {{ x }}"',
        '(echo "{{ x }}") | bash',
        '{ echo "set -e"; echo "echo {{ x }}"; } | bash',
        'out=$(echo "{{ x }}" | bash)',
        'echo "{{ x }}" | { bash; }',
        "cfg=$(cat <<EOF\nhello\nEOF\n)\nbash <<EOF\necho {{ x }}\nEOF",
        'ver=$(bash <<EOF\necho "{{ x }}"\nEOF\n)',
        'eval "$(cat <<EOF\necho {{ x }}\nEOF\n)"',
        'echo "release <<X"\nbash <<EOF\necho {{ x }}\nEOF',
        "python3 -c \"print('{{ x }}')\"",
        "perl -e \"print '{{ x }}'\"",
        'awk "BEGIN { print \\"{{ x }}\\" }"',
        'su -c "echo {{ x }}" root',
        'watch -n1 "echo {{ x }}"',
        'bash -o pipefail -c "echo {{ x }}"',
    ],
)
def test_a_value_another_interpreter_would_run_as_code_is_refused(command: str) -> None:
    """Spellings the first check did not know (found by an audit and a review)."""
    with pytest.raises(ExpressionError, match="bash evaluates a value as code"):
        parse_shell_template(command)


@pytest.mark.parametrize(
    "command",
    [
        "cat {{ x }} | sed 's|#!/usr/bin/env python|#!/usr/bin/env python3|' > run.py",
        "curl -fsS {{ x }} | sed 's|/bin/bash|/bin/sh|' > install.sh",
        "getent passwd {{ x }} | grep -qE ':/bin/(bash|zsh)$'",
        "cat <<A > /etc/conf; ssh host <<B\nv={{ x }}\nA\nuptime\nB",
        "kubectl apply -f - <<EOF\nimage: {{ x }}\nEOF",
        "sudo -u postgres psql <<EOF\nselect {{ x }};\nEOF",
        "ssh host cat <<EOF\n{{ x }}\nEOF",
        "echo {{ x }} | xargs -n1 echo",
        "echo {{ x }} | sudo tee /etc/app.conf",
        "scp {{ x }} host:/tmp/",
        "ssh {{ x }} uptime",
        'echo "{{ x }}" | ssh host "cat > /tmp/x"',
        'echo "{{ x }}" | xargs -I{} sh -c \'echo "$1"\' _ {}',
        'ssh host uptime > "/tmp/{{ x }}.log"',
        'bash script.sh <<< "{{ x }}"',
        'echo "{{ x }}" # | bash',
        "sh -e ./run.sh {{ x }}",
        "(cd /srv && make {{ x }}) | tee build.log",
        "cfg=$(cat <<EOF\nv={{ x }}\nEOF\n)",
        "awk -v v=\"{{ x }}\" 'BEGIN { print v }'",
        "python3 -c 'import sys; print(sys.argv[1])' {{ x }}",
    ],
)
def test_values_handed_to_programs_as_data_are_fine(command: str) -> None:
    """A `|` in quotes is no pipe, and a heredoc is judged by the command it is given to."""
    assert parse_shell_template(command).expressions == ("x",)


def test_a_heredoc_inside_a_command_substitution_leaves_the_lines_after_it_quoted() -> None:
    """The scanner waited for a delimiter that had gone by: every later value read as heredoc
    text, rendered without quotes, and a value with a space became two arguments."""
    template = parse_shell_template("cfg=$(cat <<EOF\nhello\nEOF\n)\ntouch /srv/{{ x }}")
    assert template.quoting == (Quoting.NONE,)
    assert template.render(["a b"])[0].endswith('touch /srv/"${TEMPEH_X1}"')
