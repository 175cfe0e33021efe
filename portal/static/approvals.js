// Approvals page: pending requests show their decision as soon as it is made (no reload).
"use strict";
(function () {
  const POLL_MS = 3000;
  function timeUTC(iso) {
    const d = new Date(iso);
    return String(d.getUTCHours()).padStart(2, "0") + ":" + String(d.getUTCMinutes()).padStart(2, "0");
  }
  async function poll(row) {
    const id = row.dataset.approvalId;
    try {
      const r = await fetch("/api/approvals/" + encodeURIComponent(id), {headers: {accept: "application/json"}, credentials: "same-origin"});
      if (!r.ok) { return; }
      const a = await r.json();
      if (a.status === row.dataset.status) { return; }
      row.dataset.status = a.status;
      const cell = row.querySelector("td.state");
      cell.textContent = a.status + (a.status === "approved" && a.approved_until ? " until " + timeUTC(a.approved_until) + " UTC" : "");
      if (a.decided_by) {
        const by = document.createElement("div");
        by.className = "muted small";
        by.textContent = "by " + a.decided_by;
        cell.appendChild(by);
      }
      const open = row.querySelector("form.open-approved");
      if (open && a.status === "approved") { open.hidden = false; }
      row.querySelectorAll("form.approve, form[action$='/deny']").forEach(f => f.remove());
    } catch (e) { /* offline for a moment: try again at the next tick */ }
  }
  function tick() {
    document.querySelectorAll("tr[data-approval-id][data-status='pending']").forEach(poll);
  }
  if (document.querySelector("tr[data-approval-id][data-status='pending']")) {
    setInterval(tick, POLL_MS);
  }
})();
