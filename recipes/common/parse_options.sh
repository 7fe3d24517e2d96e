# Kaldi-style option parsing for admmq recipes (our own implementation).
# Source it after declaring defaults as shell variables; then
#   --some-option value   sets $some_option (dashes become underscores)
#   --flag                sets a variable whose default is "false" to "true"
#   --help                prints the recipe's header comment and the options with their values
# The remaining (positional) arguments are left in "$@".  Options are the recipe's own
# lowercase, unexported variables; name internal ones in UPPERCASE or with a leading "_".
# _po_also="N ..." (set before sourcing) adds other variable names as options (Kaldi's --N).
_po_usage() {
  sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"
  echo "Options (current values):"
  for _po_v in $(compgen -v); do
    case " ${_po_option_names:-} " in *" $_po_v "*) printf '  --%s %s\n' "${_po_v//_/-}" "${!_po_v}";; esac
  done
}
# options = the recipe's own variables: not exported, not all-uppercase, not starting with "_"
_po_option_names=""
_po_exported=" $(compgen -e | tr '\n' ' ') "
for _po_v in $(compgen -v); do
  case "$_po_v" in _*|*[!a-z0-9_]*) continue;; esac
  case "$_po_exported" in *" $_po_v "*) continue;; esac
  _po_option_names="$_po_option_names $_po_v"
done
_po_option_names="$_po_option_names ${_po_also:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) _po_usage; exit 0;;
    --*=*) _po_name="${1%%=*}"; _po_val="${1#*=}"; shift;;
    --*) _po_name="$1"; shift
         _po_var="${_po_name#--}"; _po_var="${_po_var//-/_}"
         if [ "${!_po_var-__unset__}" = "false" ] && { [ $# -eq 0 ] || [[ "$1" == --* ]]; }; then
           _po_val=true
         else
           if [ $# -eq 0 ]; then echo "$0: option $_po_name needs a value" >&2; exit 1; fi
           _po_val="$1"; shift
         fi;;
    *) break;;
  esac
  _po_var="${_po_name#--}"; _po_var="${_po_var//-/_}"
  case " $_po_option_names " in
    *" $_po_var "*) printf -v "$_po_var" '%s' "$_po_val";;
    *) echo "$0: unknown option $_po_name (see --help)" >&2; exit 1;;
  esac
done
unset _po_name _po_val _po_var _po_v
true
