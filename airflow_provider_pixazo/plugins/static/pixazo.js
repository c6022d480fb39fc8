// The Pixazo view. Data comes from the plugin's JSON endpoints with the session cookie Airflow's UI
// holds; every prompt, URL, id and error is put in the page as text (textContent), never as HTML.
"use strict";
(function () {
  const body = document.body;
  const root = document.getElementById("pixazo");
  const cfg = body.dataset;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (name === "class") node.className = value;
      else node.setAttribute(name, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function taskUrl(task) {
    const base = `${cfg.ui}/dags/${encodeURIComponent(cfg.dagId)}/runs/${encodeURIComponent(cfg.runId)}` +
      `/tasks/${encodeURIComponent(task.task_id)}`;
    return task.map_index >= 0 ? `${base}/mapped/${task.map_index}` : base;
  }

  // The view runs in Airflow's iframe: move the UI itself (same origin) rather than the frame.
  function taskLink(task, label) {
    const href = taskUrl(task);
    const link = el("a", { href, class: "task-link" }, label);
    link.addEventListener("click", (event) => {
      try {
        const top = window.top;
        if (top && top !== window && top.location.origin === window.location.origin) {
          event.preventDefault();
          top.history.pushState({}, "", href);
          top.dispatchEvent(new PopStateEvent("popstate"));
        }
      } catch (err) { /* not allowed: follow the link in the frame */ }
    });
    return link;
  }

  // The plugin's route that streams a stored copy: a task instance and a position in its record, never a URI.
  function storedUrl(ref) {
    if (!ref || typeof ref.position !== "number") return null;
    const url = `${cfg.base}/api/dags/${encodeURIComponent(cfg.dagId)}/runs/${encodeURIComponent(cfg.runId)}` +
      `/tasks/${encodeURIComponent(ref.task_id)}/stored/${ref.position}`;
    return ref.map_index >= 0 ? `${url}?map_index=${ref.map_index}` : url;
  }

  function formatBytes(size) {
    if (typeof size !== "number") return "";
    if (size < 1024) return `${size} B`;
    if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KiB`;
    return `${(size / 1024 / 1024).toFixed(2)} MiB`;
  }

  function lightbox(url, caption) {
    const overlay = el("div", { class: "lightbox", role: "dialog", "aria-label": "Full-size image" },
      el("img", { src: url, alt: caption || "Pixazo image" }),
      el("p", { class: "caption" }, caption || ""));
    overlay.addEventListener("click", () => overlay.remove());
    document.addEventListener("keydown", function close(event) {
      if (event.key === "Escape") { overlay.remove(); document.removeEventListener("keydown", close); }
    });
    body.append(overlay);
  }

  // A thumbnail from the first source that loads (the stored copy, then Pixazo's CDN URL); when
  // none does, a placeholder with the stored URI.
  function thumbnail(sources, caption, storedUri) {
    const figure = el("figure", { class: "thumb" });
    const queue = sources.filter(Boolean);
    const shown = queue[0] || "";
    const img = el("img", { alt: caption || "Pixazo image", loading: "eager", decoding: "async" });
    img.addEventListener("click", () => lightbox(img.currentSrc || img.src, caption));
    function broken() {
      const placeholder = el("div", { class: "placeholder", role: "img", "aria-label": "Image unavailable" },
        el("strong", {}, "Image no longer available"),
        el("span", { class: "uri" }, storedUri ? `Stored at ${storedUri}` : shown));
      img.replaceWith(placeholder);
      figure.classList.add("broken");
    }
    img.addEventListener("load", () => {
      // Which copy is shown, on hover: the stored one (named by its URI) or Pixazo's.
      const fromStore = Boolean(sources[0]) && queue[0] === sources[0];
      img.title = fromStore ? `Stored copy: ${storedUri || ""}` : "Pixazo's URL";
    });
    img.addEventListener("error", () => {
      queue.shift();
      if (queue.length) img.src = queue[0]; else broken();
    });
    if (queue.length) { img.src = queue[0]; figure.append(img); } else { figure.append(img); broken(); }
    return figure;
  }

  // Pixazo's images with their stored copies, in Pixazo's order: [{url, file}]. A stored copy the
  // route can serve is shown even when no task of the run saw Pixazo's URLs (as the run view does).
  function imagesOf(request) {
    const byIndex = new Map();
    (((request.result || {}).media_urls) || []).forEach((url, index) => byIndex.set(index, { url, file: null }));
    for (const file of ((request.stored && request.stored.files) || [])) {
      if (typeof file.index !== "number") continue;
      const known = byIndex.get(file.index);
      if (known) known.file = file;
      else if (storedRef(request.stored, file)) byIndex.set(file.index, { url: null, file });
    }
    return [...byIndex.entries()].sort((a, b) => a[0] - b[0]).map(([, image]) => image);
  }

  function storedRef(stored, file) {
    return stored && stored.task && file && typeof file.position === "number"
      ? { ...stored.task, position: file.position } : null;
  }

  function row(label, value) {
    if (value === null || value === undefined || value === "") return null;
    return el("tr", {}, el("th", { scope: "row" }, label), el("td", {}, value));
  }

  function renderRequest(request) {
    const result = request.result || {};
    const params = request.params || {};
    const stored = request.stored;
    const section = el("section", { class: "request", "data-request-id": request.request_id });
    const status = result.status || "UNKNOWN";
    section.append(el("h2", {}, "Request ", el("code", {}, request.request_id), " ",
      el("span", { class: `status status-${status.toLowerCase()}` }, status)));
    const grid = el("div", { class: "grid" });
    for (const image of imagesOf(request)) {
      grid.append(thumbnail([storedUrl(storedRef(stored, image.file)), image.url], params.prompt,
        image.file && image.file.uri));
    }
    if (!grid.childElementCount) grid.append(el("p", { class: "muted" }, "No images yet."));
    const layout = el("div", { class: "layout" }, grid);
    section.append(layout);

    const facts = el("table", { class: "facts" });
    const duration = typeof result.duration_seconds === "number" ? `${result.duration_seconds.toFixed(1)} s` : null;
    for (const item of [
      row("Prompt", params.prompt), row("Model", params.model || result.model_id), row("Size", params.size),
      row("Quality", params.quality), row("Format", params.output_format || result.media_type),
      row("Images (n)", params.n ?? (result.media_urls || []).length),
      row("Input images", (params.images || []).join("\n")),
      row("Request id", request.request_id), row("Status", status),
      row("Submitted", result.created_at), row("Completed", result.completed_at), row("Duration", duration),
      row("Pixazo error", result.error),
    ]) if (item) facts.append(item);
    const side = el("div", { class: "side" }, facts);
    if (result.error) side.append(el("p", { class: "error", role: "alert" }, result.error));
    layout.append(side);

    if (stored && stored.files && stored.files.length) {
      const table = el("table", { class: "stored" },
        el("thead", {}, el("tr", {}, el("th", {}, "#"), el("th", {}, "Stored at"), el("th", {}, "Size"),
          el("th", {}, "SHA-256"), el("th", {}, "Copy"))));
      const tbody = el("tbody");
      for (const file of stored.files) {
        const href = storedUrl(storedRef(stored, file));
        tbody.append(el("tr", {}, el("td", {}, file.index), el("td", { class: "uri" }, file.uri || ""),
          el("td", {}, formatBytes(file.size)), el("td", { class: "sha" }, file.sha256 || ""),
          el("td", {}, href ? el("a", { href, target: "_blank", rel: "noopener", class: "open-stored" }, "Open") : "")));
      }
      table.append(tbody);
      section.append(el("h3", {}, "Stored files"), table);
      if (stored.provenance_uri) section.append(el("p", {}, "Provenance: ", el("code", {}, stored.provenance_uri)));
    }
    const tasks = el("p", { class: "muted" }, "Tasks: ");
    (request.tasks || []).forEach((task, i) => {
      if (i) tasks.append(", ");
      tasks.append(taskLink(task, task.map_index >= 0 ? `${task.task_id} [${task.map_index}]` : task.task_id));
    });
    section.append(tasks);
    return section;
  }

  // -- a batch task: its manifest, a page at a time ------------------------------------------------

  const BATCH_PER_PAGE = 50;
  const PROMPT_SHOWN = 160;

  function batchUrl(task, suffix, params) {
    const query = new URLSearchParams(params || {});
    if (task.map_index >= 0) query.set("map_index", String(task.map_index));
    const text = query.toString();
    return `${cfg.base}/api/dags/${encodeURIComponent(cfg.dagId)}/runs/${encodeURIComponent(cfg.runId)}` +
      `/tasks/${encodeURIComponent(task.task_id)}/batch${suffix}${text ? `?${text}` : ""}`;
  }

  function statusBadge(status) {
    const name = String(status || "unknown");
    return el("span", { class: `status status-${name.toLowerCase().replace(/[^a-z0-9_-]/g, "")}` }, name);
  }

  function countsBar(counts) {
    const bar = el("p", { class: "counts" });
    for (const [name, count] of Object.entries(counts || {})) {
      const badge = statusBadge(name);
      badge.append(` ${count}`);
      bar.append(badge, " ");
    }
    return bar;
  }

  // One item: its first stored image (lazy, linking to the full image), key, status, prompt, error.
  function batchItem(task, item) {
    const figure = el("figure", { class: "thumb batch-item", "data-index": item.index });
    const file = (item.files || [])[0];
    if (file && typeof item.index === "number") {
      const href = batchUrl(task, `/items/${item.index}/files/${file.position}`);
      const img = el("img", { src: href, alt: item.prompt || "Batch image", loading: "lazy", decoding: "async" });
      const link = el("a", { href, target: "_blank", rel: "noopener", class: "open-stored" }, img);
      img.addEventListener("error", () => link.replaceWith(el("div", { class: "placeholder", role: "img",
        "aria-label": "Image unavailable" }, el("strong", {}, "Image no longer available"),
        el("span", { class: "uri" }, file.uri ? `Stored at ${file.uri}` : ""))));
      figure.append(link);
    } else {
      figure.append(el("div", { class: "placeholder", role: "img", "aria-label": "No image" },
        el("strong", {}, "No image stored")));
    }
    let prompt = item.prompt || "(no prompt recorded)";
    const cut = item.prompt_chars > PROMPT_SHOWN || prompt.length > PROMPT_SHOWN;
    if (cut) prompt = `${prompt.slice(0, PROMPT_SHOWN)}…`;
    const caption = el("figcaption", {},
      el("span", { class: "item-head" }, el("code", { class: "key" }, item.key ?? String(item.index ?? "")), " ",
        statusBadge(item.status)),
      el("span", { class: "prompt", title: cut ? item.prompt : null }, prompt));
    if (item.error) caption.append(el("span", { class: "error" }, item.error));
    if (item.request_id) caption.append(el("span", { class: "muted request-id" }, item.request_id));
    figure.append(caption);
    return figure;
  }

  function renderBatch(task) {
    const section = el("section", { class: "batch", "data-task-id": task.task_id });
    const state = { page: 1, incomplete: false };
    const hash = new URLSearchParams(window.location.hash.slice(1));
    if (/^[0-9]{1,6}$/.test(hash.get("page") || "")) state.page = Math.max(1, Number(hash.get("page")));
    state.incomplete = hash.get("incomplete") === "1";

    // Every mapped instance of the task, when the UI opened the tab without a map index: one section each.
    const name = task.map_index >= 0 ? `Batch [${task.map_index}]` : "Batch";
    const filterId = task.map_index >= 0 ? `batch-incomplete-${task.map_index}` : "batch-incomplete";
    const title = el("h1", {}, name);
    const counts = el("div", { class: "counts-holder" });
    const filter = el("input", { type: "checkbox", id: filterId });
    filter.checked = state.incomplete;
    const prev = el("button", { type: "button", class: "prev" }, "‹ Previous");
    const next = el("button", { type: "button", class: "next" }, "Next ›");
    const where = el("span", { class: "page-of", "aria-live": "polite" });
    const controls = el("div", { class: "pager" },
      el("label", { for: filterId }, filter, " Not completed only"), prev, where, next);
    const grid = el("div", { class: "grid gallery batch-grid" });
    const note = el("div", { class: "batch-note" });
    section.append(title, counts, controls, note, grid);

    let latest = 0;
    function load() {
      const ticket = ++latest;
      const params = { page: String(state.page), per_page: String(BATCH_PER_PAGE) };
      if (state.incomplete) params.status = "incomplete";
      window.history.replaceState(null, "", `#page=${state.page}${state.incomplete ? "&incomplete=1" : ""}`);
      section.setAttribute("aria-busy", "true");
      fetch(batchUrl(task, "", params), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(async (response) => {
          if (ticket !== latest) return;
          if (!response.ok) {
            const recorded = task.batch && task.batch.counts && Object.keys(task.batch.counts).length;
            note.replaceChildren(el("p", { class: "muted empty" }, response.status === 404
              ? "No manifest to show yet: the batch has not finished, or its manifest cannot be read here."
              : `Could not load the batch (HTTP ${response.status}).`));
            if (recorded) counts.replaceChildren(countsBar(task.batch.counts));
            grid.replaceChildren();
            return;
          }
          const page = await response.json();
          if (ticket !== latest) return;
          title.textContent = `${name} — ${page.total} item${page.total === 1 ? "" : "s"}`;
          counts.replaceChildren(countsBar(page.counts));
          where.textContent = `Page ${page.page} of ${page.pages} (${page.matching} ` +
            `${state.incomplete ? "not completed" : "items"})`;
          prev.disabled = page.page <= 1;
          next.disabled = page.page >= page.pages;
          note.replaceChildren();
          if (page.unreadable_count) {
            note.append(el("p", { class: "error", role: "alert" },
              `${page.unreadable_count} line(s) of the manifest could not be read: ` +
              `${page.unreadable_lines.join(", ")}${page.unreadable_count > page.unreadable_lines.length ? ", …" : ""}`));
          }
          note.append(el("p", { class: "muted uri" }, `Manifest: ${page.manifest}`));
          grid.replaceChildren(...page.items.map((item) => batchItem(task, item)));
          if (!page.items.length) {
            grid.append(el("p", { class: "muted empty" },
              state.incomplete ? "Every item completed." : "No items on this page."));
          }
        })
        .catch((err) => { if (ticket === latest) note.replaceChildren(el("p", { class: "error" }, `${err}`)); })
        .finally(() => { if (ticket === latest) section.setAttribute("aria-busy", "false"); });
    }
    prev.addEventListener("click", () => { state.page = Math.max(1, state.page - 1); load(); });
    next.addEventListener("click", () => { state.page += 1; load(); });
    filter.addEventListener("change", () => { state.incomplete = filter.checked; state.page = 1; load(); });
    load();
    return section;
  }

  function renderTask(view) {
    root.replaceChildren();
    const batches = view.tasks.filter((task) => task.batch);
    for (const task of batches) root.append(renderBatch(task));
    if (batches.length) return;
    if (!view.requests.length) {
      root.append(el("p", { class: "muted empty" },
        view.tasks.length ? "This task has no Pixazo request recorded yet." : "This task is not a Pixazo task."));
      return;
    }
    for (const request of view.requests) root.append(renderRequest(request));
  }

  function renderRun(view) {
    root.replaceChildren();
    const count = view.images.length;
    root.append(el("h1", {}, `Pixazo gallery — ${count} image${count === 1 ? "" : "s"}`));
    if (!count) { root.append(el("p", { class: "muted empty" }, "No Pixazo images in this run.")); return; }
    const grid = el("div", { class: "grid gallery" });
    for (const image of view.images) {
      const figure = thumbnail([storedUrl(image.stored), image.url], image.prompt, image.stored_uri);
      const label = image.map_index >= 0 ? `${image.task_id} [${image.map_index}]` : image.task_id;
      figure.append(el("figcaption", {}, el("span", { class: "prompt" }, image.prompt || "(no prompt recorded)"),
        taskLink(image, label)));
      grid.append(figure);
    }
    root.append(grid);
  }

  function fail(message) {
    root.replaceChildren(el("p", { class: "error", role: "alert" }, message));
  }

  fetch(cfg.api, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(async (response) => {
      if (!response.ok) {
        const text = response.status === 401 || response.status === 403
          ? "You are not allowed to see this run's Pixazo images (sign in again?)."
          : `Could not load the Pixazo view (HTTP ${response.status}).`;
        fail(text);
        return;
      }
      const view = await response.json();
      if (cfg.view === "run") renderRun(view); else renderTask(view);
    })
    .catch((err) => fail(`Could not load the Pixazo view: ${err}`))
    .finally(() => root.setAttribute("aria-busy", "false"));
})();
