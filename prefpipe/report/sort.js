// Sort a table by the column whose header is clicked (again: the other way). Empty cells stay last.
for (const th of document.querySelectorAll("table.sortable th")) {
  th.addEventListener("click", () => {
    const column = th.cellIndex, body = th.closest("table").tBodies[0];
    const up = th.getAttribute("aria-sort") !== "ascending";
    for (const other of th.parentNode.cells) other.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", up ? "ascending" : "descending");
    const key = row => row.cells[column].dataset.v ?? row.cells[column].textContent.trim();
    const order = (a, b) => {
      const x = key(a), y = key(b);
      if (x === "" || y === "") return (x === "") - (y === "");
      const c = isNaN(x) || isNaN(y) ? x.localeCompare(y) : x - y;
      return up ? c : -c;
    };
    body.append(...[...body.rows].sort(order));
  });
}
