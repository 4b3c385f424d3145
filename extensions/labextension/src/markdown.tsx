/** Safe Markdown: JupyterLab's own renderer on an untrusted model, so its sanitizer runs. */
import { IRenderMimeRegistry, MimeModel } from '@jupyterlab/rendermime';
import React, { useEffect, useRef } from 'react';

export function Markdown(props: { source: string; rendermime: IRenderMimeRegistry }): JSX.Element {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const host = ref.current;
    if (!host) {
      return;
    }
    const renderer = props.rendermime.createRenderer('text/markdown');
    const model = new MimeModel({ data: { 'text/markdown': props.source }, trusted: false });
    let live = true;
    void renderer.renderModel(model).then(() => {
      if (live) {
        host.replaceChildren(renderer.node);
      }
    });
    return () => {
      live = false;
      renderer.dispose();
    };
  }, [props.source, props.rendermime]);
  return <div className="jp-deepvre-description" ref={ref} />;
}
