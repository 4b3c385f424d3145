/** Opens the model, run, runs (side by side, a sweep), preprocessing job and served-models pages in JupyterLab's main area, one tab per model, run and job. */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import React from 'react';

import { PageRef } from './format';
import { ModelPage } from './modelpage';
import { IPanelOptions } from './panel';
import { PreprocessPage } from './preprocess';
import { RunPage } from './runpage';
import { RunsPage } from './runspage';
import { ServicesPage } from './servicespage';

export class Pages {
  private open = new Map<string, MainAreaWidget>();

  constructor(
    private app: JupyterFrontEnd,
    private options: () => IPanelOptions
  ) {}

  /** Show ``page``: the tab already open for it, else a new one (a model opened at another version replaces its tab). */
  show(page: PageRef): void {
    const key =
      page.kind === 'model'
        ? `model:${page.name}`
        : page.kind === 'services'
          ? 'services'
          : page.kind === 'runs'
            ? `runs:${page.sweep || page.ids.join(',')}`
            : `${page.kind}:${page.id}`;
    const existing = this.open.get(key);
    const version = page.kind === 'model' ? page.version : '';
    if (existing && !existing.isDisposed && (page.kind !== 'model' || !version || existing.node.dataset.version === version)) {
      this.app.shell.activateById(existing.id);
      return;
    }
    existing?.dispose();
    const content =
      page.kind === 'model'
        ? ReactWidget.create(<ModelPage name={page.name} version={page.version} options={this.options()} />)
        : page.kind === 'run'
          ? ReactWidget.create(<RunPage id={page.id} options={this.options()} />)
          : page.kind === 'job'
            ? ReactWidget.create(<PreprocessPage id={page.id} openPath={this.options().openPath} />)
            : page.kind === 'runs'
              ? ReactWidget.create(<RunsPage ids={page.ids} sweep={page.sweep} options={this.options()} />)
              : ReactWidget.create(<ServicesPage />);
    const widget = new MainAreaWidget({ content });
    widget.id = `deepvre-${page.kind}-${Math.random().toString(36).slice(2, 10)}`;
    widget.node.dataset.version = version;
    widget.title.label =
      page.kind === 'model'
        ? version
          ? `${page.name}:${version}`
          : page.name
        : page.kind === 'run'
          ? `Run ${page.id}`
          : page.kind === 'job'
            ? `Preprocessing ${page.id}`
            : page.kind === 'runs'
              ? page.sweep
                ? `Sweep ${page.sweep}`
                : `Compare ${page.ids.length} runs`
              : 'Served models';
    widget.title.closable = true;
    widget.addClass('jp-deepvre-page-widget');
    widget.disposed.connect(() => {
      if (this.open.get(key) === widget) {
        this.open.delete(key);
      }
    });
    this.open.set(key, widget);
    this.app.shell.add(widget, 'main');
    this.app.shell.activateById(widget.id);
  }
}
