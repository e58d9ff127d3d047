#!/usr/bin/env bash
# Runs the molecule scenarios one after the other (`molecule test -s <name>`),
# prints each scenario's wall time, and stops at the first failure with the
# diagnostics a person needs (failing step, emulator requests, sandbox logs).
#
#   tests/integration/run.sh                       # every scenario
#   SCENARIOS="default upgrade" tests/integration/run.sh
#
# Needs the venv's molecule, ansible-playbook and pytest on PATH (`make
# integration` does that) and the sandbox tools built (`make sandbox`).
set -euo pipefail

repo_root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "${repo_root}"

# The plain deploy first: when it breaks, every other scenario would too.
all_scenarios="default bad-input upgrade helm3 tiller faults regional check-mode"
scenarios="${SCENARIOS:-${all_scenarios}}"
sandbox_dir="${DASK_GKE_SANDBOX_DIR:-${repo_root}/.sandbox}"
# Molecule wraps its output at the terminal width (80 columns in CI logs);
# wider lines keep failure messages and request paths readable.
export COLUMNS="${COLUMNS:-160}"
log_root="${repo_root}/artifacts/integration"

for tool in molecule ansible-playbook pytest; do
  if ! command -v "${tool}" >/dev/null 2>&1; then
    echo "integration: ${tool} not on PATH; run through 'make integration' or put .venv/bin first" >&2
    exit 2
  fi
done
for name in ${scenarios}; do
  if [[ ! -f "molecule/${name}/molecule.yml" ]]; then
    echo "integration: no scenario '${name}' (known: ${all_scenarios})" >&2
    exit 2
  fi
done

# What a person needs when a scenario fails: the step molecule reported, the
# end of its output, the emulator's last requests and the sandbox's logs.
print_diagnostics() {
  local name="$1" log="$2"
  echo
  echo "======== integration: scenario '${name}' FAILED ========"
  echo "full molecule output: ${log}"
  echo "playbook runs of the verifier: ${log_root}/${name}/"
  echo "---- molecule output, failing part (last 80 lines) ----"
  tail -n 80 "${log}"
  if [[ -f "${sandbox_dir}/requests.jsonl" ]]; then
    echo "---- emulator: last 25 GKE API requests (${sandbox_dir}/requests.jsonl) ----"
    tail -n 25 "${sandbox_dir}/requests.jsonl"
  fi
  # Only logs this scenario wrote to: the sandbox keeps older ones.
  local file
  while IFS= read -r file; do
    echo "---- tail of ${file} ----"
    tail -n 20 "${file}"
  done < <(find "${sandbox_dir}/logs" -name '*.log' -newer "${log_root}/${name}/.started" \
             -printf '%T@ %p\n' 2>/dev/null | sort -rn | head -n 6 | cut -d' ' -f2-)
  echo "======== end of diagnostics for '${name}' ========"
}

declare -a summary=()
suite_start=${SECONDS}
status=0
for name in ${scenarios}; do
  rm -rf "${log_root:?}/${name}"
  mkdir -p "${log_root}/${name}"
  chmod 0700 "${log_root}/${name}"
  touch "${log_root}/${name}/.started"
  log="${log_root}/${name}/molecule.log"
  echo "==> integration: molecule test -s ${name} (output also in ${log})"
  start=${SECONDS}
  if molecule test -s "${name}" 2>&1 | tee "${log}"; then
    result="passed"
  else
    result="FAILED"
    status=1
  fi
  # Molecule's destroy ran `sandbox.cli down`: the real nodes must have left
  # nothing (namespaces, interfaces, nft tables, mounts, cgroups, processes).
  if ! python -m sandbox.cli leftovers 2>&1 | tee -a "${log}"; then
    result="FAILED"
    status=1
  fi
  elapsed=$(( SECONDS - start ))
  summary+=("$(printf '%-10s %-7s %4dm%02ds' "${name}" "${result}" $((elapsed / 60)) $((elapsed % 60)))")
  echo "==> integration: scenario ${name} ${result} in ${elapsed}s"
  if [[ ${status} -ne 0 ]]; then
    print_diagnostics "${name}" "${log}"
    break
  fi
done

total=$(( SECONDS - suite_start ))
echo
echo "integration: wall time per scenario"
printf '  %s\n' "${summary[@]}"
printf '  %-10s %-7s %4dm%02ds\n' "total" "" $((total / 60)) $((total % 60))
exit "${status}"
